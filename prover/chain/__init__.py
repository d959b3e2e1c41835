"""Core chain operations: Solidity compilation, verifier contracts, a local node, web3 calls."""
