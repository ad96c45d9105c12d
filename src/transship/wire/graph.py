"""Answers of the Microsoft Graph subset (`/v1.0`) that `az role assignment` reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from transship.wire.base import Answer


class GraphServicePrincipal(Answer):
    odata_type: Literal["#microsoft.graph.servicePrincipal"] = Field(
        default="#microsoft.graph.servicePrincipal",
        validation_alias="@odata.type",
        serialization_alias="@odata.type",
    )
    id: str
    app_id: str | None
    display_name: str
    service_principal_names: list[str | None]
    service_principal_type: str = "Application"
    app_owner_organization_id: str
    account_enabled: bool = True


class GraphUser(Answer):
    odata_type: Literal["#microsoft.graph.user"] = Field(
        default="#microsoft.graph.user",
        validation_alias="@odata.type",
        serialization_alias="@odata.type",
    )
    id: str
    display_name: str
    user_principal_name: str
    account_enabled: bool = True


GraphObject = Annotated[GraphServicePrincipal | GraphUser, Field(discriminator="odata_type")]


class GraphObjectList(Answer):
    odata_context: str = Field(
        validation_alias="@odata.context", serialization_alias="@odata.context"
    )
    value: list[GraphObject]
