"""Frozen rows handed to the layers above."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    id: int
    name: str
    login_server: str | None
    subscription_id: str | None
    resource_group: str | None
    is_default: bool
    created_at: datetime
    location: str = "local"
    sku: str = "Premium"


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    registry_id: int
    repository: str
    offset: int
    algorithm: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ManifestReference:
    digest: str
    is_manifest: bool


@dataclass(frozen=True, slots=True)
class TagRecord:
    name: str
    digest: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ImportJobRecord:
    id: str
    registry_id: int
    request: str
    credentials: bytes | None
    state: str
    bytes_total: int
    bytes_done: int
    blobs_total: int
    blobs_done: int
    manifests_total: int
    manifests_done: int
    bytes_fetched: int
    error_code: str | None
    error_message: str | None
    error_step: str | None
    error_object: str | None
    error_upstream_status: int | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobProgress:
    bytes_total: int = 0
    bytes_done: int = 0
    blobs_total: int = 0
    blobs_done: int = 0
    manifests_total: int = 0
    manifests_done: int = 0
    bytes_fetched: int = 0


@dataclass(frozen=True, slots=True)
class JobFailure:
    code: str
    message: str
    step: str | None = None
    obj: str | None = None
    upstream_status: int | None = None
