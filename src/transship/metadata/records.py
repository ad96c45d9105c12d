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
