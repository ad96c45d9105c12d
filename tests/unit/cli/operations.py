"""Import operation statuses as the server answers them, for tests of what the CLI shows."""

from __future__ import annotations

from typing import Any

from transship.wire.arm import OperationStatus

ZERO_PROGRESS = {
    "bytesTotal": 0,
    "bytesDone": 0,
    "bytesFetched": 0,
    "blobsTotal": 0,
    "blobsDone": 0,
    "manifestsTotal": 0,
    "manifestsDone": 0,
}


def operation_status(
    status: str = "InProgress",
    *,
    state: str = "running",
    source: str = "docker.io/library/alpine:3.20",
    target_tags: tuple[str, ...] = ("alpine:3.20",),
    **properties: Any,
) -> OperationStatus:
    """An import operation's status: no progress yet, `properties` added (wire names)."""
    return OperationStatus.model_validate(
        {
            "id": "/subscriptions/s/providers/Microsoft.ContainerRegistry/locations/local/"
            "operationStatuses/op",
            "name": "op",
            "status": status,
            "startTime": "2026-12-06T10:00:00Z",
            "properties": {
                "registry": "r",
                "state": state,
                "source": source,
                "targetTags": list(target_tags),
                "untaggedTargetRepositories": [],
                "mode": "NoForce",
                "attempts": 1,
                "progress": dict(ZERO_PROGRESS),
                **properties,
            },
        }
    )
