"""Answers about the service itself: its OpenAPI document and its readiness."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, NonNegativeInt

from transship.wire.base import Answer, SnakeAnswer, extensible


class OpenApiDocument(SnakeAnswer):
    """The OpenAPI 3.1 document: its version, info and paths (and the rest, kept as is)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class LoopLiveness(Answer):
    """One background loop: its state, restarts, the type of its last error, how long it
    has been failing and the age of its last heartbeat (seconds)."""

    name: str
    state: str
    restarts: NonNegativeInt
    last_error: str | None
    failing_seconds: float | None
    heartbeat_age_seconds: float | None


class Readiness(Answer):
    """`GET /readyz`: ready, or unavailable with every problem; each loop's liveness.
    `background_work`: whether this process runs the service's background work (imports,
    GC, webhook deliveries), false for an HTTP-only process (`serve --no-background-work`,
    the extra processes of `serve --workers N`)."""

    status: str = extensible("ready", "unavailable")
    problems: list[str]
    background_work: bool = True
    loops: list[LoopLiveness]
