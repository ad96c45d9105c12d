"""The `transship` command line."""
