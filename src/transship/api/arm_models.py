"""Request bodies of the management API, validated with pydantic; errors name the field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transship.errors import ArmError


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ImportSourceCredentials(_Body):
    username: str | None = None
    password: str | None = None


class ImportSource(_Body):
    resource_id: str | None = Field(default=None, alias="resourceId")
    registry_uri: str | None = Field(default=None, alias="registryUri")
    credentials: ImportSourceCredentials | None = None
    source_image: str = Field(alias="sourceImage", min_length=1)


class ImportImageParameters(_Body):
    source: ImportSource
    target_tags: list[str] | None = Field(default=None, alias="targetTags")
    untagged_target_repositories: list[str] | None = Field(default=None, alias="untaggedTargetRepositories")
    mode: Literal["NoForce", "Force"] = "NoForce"


class RegistrySku(_Body):
    name: Literal["Basic", "Standard", "Premium"] = "Premium"


class RegistryProperties(_Body):
    login_server: str | None = Field(default=None, alias="loginServer")


class RegistryBody(_Body):
    location: str | None = None
    sku: RegistrySku | None = None
    properties: RegistryProperties | None = None
    tags: dict[str, str] | None = None


def parse_body(model: type[_Body], data: Any) -> Any:
    """Validate a JSON body. Raises ArmError 400 InvalidParameter naming the first field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ArmError(400, "InvalidParameter", f"The parameter '{field}' is invalid: {first['msg']}.", target=field) from None
