"""Helpers shared by the tests (import as ``from helpers.models import make_mlp``).

Plain functions and classes only; fixtures live in the ``conftest.py`` files.
"""
