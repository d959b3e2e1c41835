"""Core proving operations: setup, witness, prove, verify, proof records."""
