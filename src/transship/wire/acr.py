"""Answers of the ACR data plane (`/acr/v1`) and the OCI error envelope."""

from __future__ import annotations

from typing import Any

from pydantic import MISSING, BaseModel, ConfigDict, Field, NonNegativeInt
from pydantic.alias_generators import to_camel

from transship.wire.base import Answer, DateTime
from transship.wire.bodies import JsonBool


class OciErrorItem(Answer):
    code: str
    message: str
    detail: Any = MISSING


class OciError(Answer):
    """The OCI distribution error envelope."""

    errors: list[OciErrorItem] = Field(min_length=1)


class Repositories(Answer):
    repositories: list[str]


class ChangeableAttributes(Answer):
    delete_enabled: bool = True
    write_enabled: bool = True
    read_enabled: bool = True
    list_enabled: bool = True


class TagAttributes(Answer):
    name: str
    digest: str
    created_time: DateTime
    last_update_time: DateTime
    signed: bool = False
    changeable_attributes: ChangeableAttributes = Field(default_factory=ChangeableAttributes)


class TagList(Answer):
    registry: str
    image_name: str
    tags: list[TagAttributes]


class ManifestAttributes(Answer):
    digest: str
    image_size: NonNegativeInt
    created_time: DateTime
    last_update_time: DateTime
    media_type: str
    architecture: str | MISSING = MISSING
    os: str | MISSING = MISSING
    tags: list[str]
    changeable_attributes: ChangeableAttributes = Field(default_factory=ChangeableAttributes)


class ManifestList(Answer):
    registry: str
    image_name: str
    manifests: list[ManifestAttributes]


class DeletedRepository(Answer):
    manifests_deleted: list[str]
    tags_deleted: list[str]


class RepositoryAttributes(Answer):
    """A repository (`az acr repository show --repository`)."""

    registry: str
    image_name: str
    created_time: DateTime | None
    last_update_time: DateTime | None
    manifest_count: NonNegativeInt
    tag_count: NonNegativeInt
    changeable_attributes: ChangeableAttributes = Field(default_factory=ChangeableAttributes)


class TagItem(Answer):
    """One tag (`az acr repository show --image name:tag`)."""

    registry: str
    image_name: str
    tag: TagAttributes


class ManifestItem(Answer):
    """One manifest (`az acr repository show --image name@digest`)."""

    registry: str
    image_name: str
    manifest: ManifestAttributes


class ChangeableAttributesUpdate(BaseModel):
    """The body of `PATCH /acr/v1/{repository}[/_tags/{tag}|/_manifests/{digest}]`
    (`az acr repository update`, `az acr manifest update-metadata`): the attributes to set;
    one left out keeps its value. Another field is refused, not ignored."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel
    )

    delete_enabled: JsonBool | None = None
    write_enabled: JsonBool | None = None
    read_enabled: JsonBool | None = None
    list_enabled: JsonBool | None = None
