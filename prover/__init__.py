"""prover: make machine-learning computations provable with ezkl (Halo2/KZG on BN254)."""

__version__ = "0.1.0"
