"""Proofs of training: SGD steps of small models as circuits, chained by commitments.

``graph`` (what a step graph is) and ``steps`` / ``federated`` (circuits and proofs) need
no PyTorch; ``step_export`` (exporting a module's step) does.
"""
