"""Rules of national standards for identifiers: pure functions, no I/O, no imports of our packages.

One module per standard, so `services` (which raises DomainErrors) and `integrations` (which
checks configuration and masks logs) apply the very same rule instead of two copies that drift
apart. import-linter keeps this package a leaf (pyproject.toml, contract `standards-is-a-leaf`).
"""
