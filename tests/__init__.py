"""Transship's test suite (a package so that ``tests.peers`` is importable)."""
