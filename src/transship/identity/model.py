"""Values describing who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["ServicePrincipal", "User"]
SERVICE_PRINCIPAL: PrincipalKind = "ServicePrincipal"
USER: PrincipalKind = "User"


@dataclass(frozen=True, slots=True)
class Principal:
    """A directory principal: a service principal or a user of one tenant. RBAC role
    assignments are made to `object_id`."""

    object_id: str
    tenant_id: str
    kind: PrincipalKind
    name: str
    app_id: str | None = None

    @property
    def display(self) -> str:
        return f"{self.kind} '{self.name}' ({self.app_id or self.object_id})"


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A secret as handed out once at creation; only its hash is kept."""

    key_id: str
    value: str
    hint: str
    expires_at: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class CreatedPrincipal:
    principal: Principal
    secret: IssuedSecret | None
