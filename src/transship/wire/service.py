"""Answers about the service itself: its OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from transship.wire.base import SnakeAnswer


class OpenApiDocument(SnakeAnswer):
    """The OpenAPI 3.1 document: its version, info and paths (and the rest, kept as is)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
