"""Webhooks: management of a registry's webhooks and delivery of their events."""
