"""Principals, tokens, RBAC and network rules (with the identity issue)."""
