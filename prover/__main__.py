"""``python -m prover``: the command line."""

from prover.cli import main

main()
