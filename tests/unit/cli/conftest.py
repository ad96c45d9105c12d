"""Fixtures of the client command tests: the fake server (see fake_service)."""

from tests.unit.cli.fake_service import config_home, logged_in, service

__all__ = ["config_home", "logged_in", "service"]
