"""Well-known values of anvil's development chain."""

from __future__ import annotations

# anvil's second development account (public, well-known).
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
