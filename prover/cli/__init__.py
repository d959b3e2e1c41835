"""The ``prover`` command line (entry point ``prover.cli:main``).

Modules, bottom up: ``output`` (what is printed where, error mapping, progress bars),
``inputs`` (data files, the store, a chain connection), ``remote`` (the ``--remote`` mode
through the service's HTTP API); the command groups ``inference``, ``chain``, ``records``,
``service`` and ``training``; ``root``, which registers them all on ``app``.
"""

from prover.cli.root import app, main

__all__ = ["app", "main"]
