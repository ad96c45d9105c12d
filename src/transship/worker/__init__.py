"""Background loops that run inside `serve` (or alone)."""
