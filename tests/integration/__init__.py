"""Integration tests: real peers (registries, clients, databases) on loopback."""
