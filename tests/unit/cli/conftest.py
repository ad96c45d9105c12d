"""Fixtures of the client command tests: the real application in-process (see live_service)."""

from tests.unit.cli.live_service import bootstrapped, config_home, logged_in, service

__all__ = ["bootstrapped", "config_home", "logged_in", "service"]
