"""Who may import what, as ACR decides it: write (or importImage) on the target, checked by
the management API; pull rights on a source registry of this service; credentials for a
source of another tenant; and network rules on both, the service acting as a trusted
service."""

from __future__ import annotations

from transship import errors
from transship.errors import Denied
from transship.identity.access import AccessControl
from transship.identity.dataplane import DataPlaneAuth, Unauthenticated
from transship.identity.model import Principal
from transship.identity.network import NetworkRules, trusted_service_allowed
from transship.identity.rbac import Actions
from transship.identity.registry_access import RegistryAccess
from transship.metadata.records import RegistryRecord
from transship.registry.registries import parse_registry_id, registry_id_of


def _restricted(rules: NetworkRules) -> bool:
    return rules.public_network_access == "Disabled" or rules.default_action == "Deny"


class ImportPolicy:
    def __init__(
        self, access: AccessControl, registry_access: RegistryAccess, dataplane: DataPlaneAuth
    ) -> None:
        self._access = access
        self._registry_access = registry_access
        self._dataplane = dataplane

    async def _network(self, registry: RegistryRecord, role: str) -> None:
        rules = (await self._registry_access.settings(registry)).network
        if _restricted(rules) and not trusted_service_allowed(rules):
            raise Denied(
                f"The {role} registry '{registry.name}' restricts network access "
                f"(publicNetworkAccess={rules.public_network_access}, "
                f"defaultAction={rules.default_action}) and does not let trusted services "
                "bypass it (networkRuleBypassOptions=None). Set networkRuleBypassOptions to "
                "AzureServices to allow imports.",
                reason="network",
                field="source" if role == "source" else "registry",
            )

    async def outside_tenant(self, principal: Principal, resource_id: str) -> bool:
        """Whether `resource_id` names a registry outside the subscriptions of the caller's
        tenant (another tenant's, or a subscription that does not exist). False for an id
        that is not a registry id (the intake refuses it, naming the field)."""
        parts = parse_registry_id(resource_id)
        if parts is None:
            return False
        return await self._dataplane.subscription_tenant(parts[0]) != principal.tenant_id

    async def check_source_id(self, principal: Principal, resource_id: str) -> None:
        """For a source named by resource id without credentials. Passes when it is in a
        subscription of the caller's tenant (whether the registry exists is then for the
        caller to learn: 404 or a refusal naming its rights). Otherwise raises Denied
        (reason "cross_tenant") with one answer for a registry of another tenant, a
        registry that does not exist and a subscription that does not exist: the message
        and code come from the request alone, and each case costs the same one lookup, so a
        caller outside a tenant cannot probe which of its registries exist."""
        if not await self.outside_tenant(principal, resource_id):
            return
        raise Denied(
            f"The source registry '{_name_in(resource_id)}' (source.resourceId) is not in a "
            "subscription of your tenant, or does not exist. A registry of another tenant is "
            "imported with source.credentials (its admin user, a registry token, or a service "
            "principal of that tenant).",
            reason="cross_tenant",
            field="source.credentials",
        )

    @staticmethod
    def credentials_refused(name: str) -> errors.Unauthenticated:
        """The answer to credentials a source registry does not accept; also the answer, for
        a caller outside the tenant, when the registry it names by id does not exist (so
        that made-up credentials cannot probe for registries either)."""
        return errors.Unauthenticated(
            f"The credentials given for source registry '{name}' are not valid.",
            reason="source_credentials",
            field="source.credentials",
        )

    async def check(
        self,
        principal: Principal,
        target: RegistryRecord,
        source: RegistryRecord | None,
        repository: str,
        credentials: tuple[str, str] | None,
        source_name: str | None = None,
    ) -> None:
        """Passes when the import may run. Raises Denied (no right to pull; reason
        "network" for a network rule, "cross_tenant" for a source of another tenant without
        credentials) or Unauthenticated (reason "source_credentials"). `credentials` are
        (user name, password) given for the source; they are checked before the source's
        network rules, so that only their holder learns more of the source. `source_name` is
        the source's name as the request gave it (messages quote it, never the stored
        spelling). The caller's rights on the target are checked before this."""
        await self._network(target, "target")
        if source is None:
            return  # a remote registry: the request's credentials (if any) go upstream
        name = source_name or source.name
        if credentials is not None:
            try:
                grant = await self._dataplane.basic(source, *credentials)
            except Unauthenticated:
                raise self.credentials_refused(name) from None
            await self._network(source, "source")
            if not grant.allows(repository, "pull"):
                raise Denied(
                    f"The credentials given for source registry '{name}' may not pull "
                    f"repository '{repository}'.",
                    field="source.credentials",
                )
            return
        await self._network(source, "source")
        source_tenant = await self._dataplane.registry_tenant(source)
        if (await self._dataplane.anonymous(source)).allows(repository, "pull"):
            return
        if source_tenant != principal.tenant_id:
            raise Denied(
                f"Source registry '{source.name}' belongs to another tenant: give "
                "source.credentials (its admin user, a registry token, or a service principal "
                "of that tenant).",
                reason="cross_tenant",
                field="source.credentials",
            )
        scope = registry_id_of(source)
        if "pull" not in await self._access.registry_actions(principal, scope):
            raise Denied(
                f"The client '{principal.app_id or principal.name}' with object id "
                f"'{principal.object_id}' does not have authorization to perform action "
                f"'{Actions.PULL}' over scope '{scope}' (the import source).",
                field="source",
            )


def _name_in(resource_id: str) -> str:
    parts = parse_registry_id(resource_id)
    return resource_id if parts is None else parts[2]
