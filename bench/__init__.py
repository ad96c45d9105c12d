"""Transship against Debian's docker-registry, side by side: ``python bench/run.py``."""
