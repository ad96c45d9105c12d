"""The web portal: server-rendered pages at `/portal` over the same services and the same
authorization checks as the management API (see docs/portal.md)."""
