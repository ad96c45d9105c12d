"""The form bodies (`application/x-www-form-urlencoded`) of the token endpoints. Every field
is text; fields not named are ignored. The endpoints read the form's fields themselves (an
absent field is empty): these models describe the forms for the OpenAPI document and for
clients that build them."""

from __future__ import annotations

from typing import Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_form(self) -> dict[str, str]:
        """The fields given, as form fields."""
        return {k: str(v) for k, v in self.model_dump().items()}


class TokenRequest(_Form):
    """An Entra token request: client credentials, or a user's password."""

    grant_type: Literal["client_credentials", "password"]
    client_id: str | MISSING = Field(
        default=MISSING, description="The service principal's client (app) id."
    )
    client_secret: str | MISSING = Field(
        default=MISSING,
        description="Its secret; without one, HTTP Basic client id and secret are used.",
    )
    scope: str | MISSING = Field(
        default=MISSING,
        description="`<resource>/.default`: the audience of the token (this service's URL for "
        "the management API, https://containerregistry.azure.net for /oauth2/exchange).",
    )
    resource: str | MISSING = Field(
        default=MISSING, description="The v1 form of `scope`: the resource alone."
    )
    username: str | MISSING = Field(default=MISSING, description="A user's name (password grant).")
    password: str | MISSING = Field(
        default=MISSING, description="The user's password (password grant)."
    )


class RegistryTokenRequest(_Form):
    """A registry access token request: a registry credential (admin user, registry token,
    service principal or user) or an ACR refresh token."""

    grant_type: Literal["password", "refresh_token"]
    service: str | MISSING = Field(
        default=MISSING, description="The registry's login server (not checked)."
    )
    scope: str | MISSING = Field(
        default=MISSING,
        description="Space-separated `repository:<name>:<actions>` or `registry:catalog:*`.",
    )
    username: str | MISSING = Field(default=MISSING, description="The password grant's user name.")
    password: str | MISSING = Field(default=MISSING, description="The password grant's password.")
    refresh_token: str | MISSING = Field(
        default=MISSING, description="An ACR refresh token (refresh_token grant)."
    )
    client_id: str | MISSING = MISSING
    access_type: str | MISSING = MISSING


class RegistryExchangeRequest(_Form):
    """An exchange of an Entra access token for an ACR refresh token."""

    grant_type: Literal["access_token", "access_token_refresh_token"]
    service: str | MISSING = Field(
        default=MISSING, description="The registry's login server (not checked)."
    )
    tenant: str | MISSING = Field(
        default=MISSING, description="The tenant the token must come from, if given."
    )
    access_token: str | MISSING = Field(
        default=MISSING,
        description="An Entra access token of this service (for "
        "https://containerregistry.azure.net or a management audience).",
    )
