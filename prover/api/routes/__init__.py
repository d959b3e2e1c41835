"""The routes, one router per domain; ``prover.api.app`` includes them all."""
