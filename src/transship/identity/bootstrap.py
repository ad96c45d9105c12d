"""What the first start creates: the root tenant with its default subscription and resource
group, and the owner service principal whose credential is written once to the data
directory."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from transship.identity.directory import Directory
from transship.identity.secrets import write_private_file
from transship.metadata.queries import MetadataStore

log = logging.getLogger(__name__)

DEFAULT_RESOURCE_GROUP = "default"
DEFAULT_LOCATION = "local"
ROOT_TENANT_NAME = "Default Directory"


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    tenant_id: str
    subscription_id: str
    resource_group: str
    location: str


async def bootstrap(
    meta: MetadataStore, directory: Directory, credential_file: Path
) -> ServiceIdentity:
    """Load the service identity, creating it on first start.

    The owner service principal holds Owner on the service root ("/"). Its secret is
    written once to `credential_file` (mode 0600), shown on an interactive terminal, and
    otherwise kept only as a hash; it is never logged.
    """
    async with meta.reading() as q:
        state = await q.service_state()
    root = await directory.root_tenant()
    if root is None:
        tenant, subscription, owner = await directory.create_tenant(
            ROOT_TENANT_NAME,
            subscription_id=state.get("subscription_id"),
            root=True,
            location=DEFAULT_LOCATION,
            owner_name="transship-owner",
            owner_scope="/",
            owner_years=2,
        )
        assert owner.secret is not None and owner.principal.app_id is not None
        write_private_file(
            credential_file,
            json.dumps(
                {
                    "tenantId": tenant.id,
                    "subscriptionId": subscription.id,
                    "resourceGroup": DEFAULT_RESOURCE_GROUP,
                    "clientId": owner.principal.app_id,
                    "clientSecret": owner.secret.value,
                },
                indent=2,
            )
            + "\n",
        )
        log.info(
            "first start: owner service principal %s created; its credential is in %s",
            owner.principal.app_id,
            credential_file,
        )
        if sys.stdout.isatty():
            print(
                f"Owner service principal (shown once): tenant {tenant.id}, "
                f"client id {owner.principal.app_id}, "
                f"secret {owner.secret.value} (also saved to {credential_file})"
            )
        state = {
            "subscription_id": subscription.id,
            "resource_group": DEFAULT_RESOURCE_GROUP,
            "location": DEFAULT_LOCATION,
        }
        async with meta.writing() as q:
            await q.set_service_state(state)
        root_id = tenant.id
    else:
        root_id = root.id
    async with meta.writing() as q:
        await q.adopt_orphan_registries(state["subscription_id"], state["resource_group"])
        iq = q.identity
        for subscription_id, group in await iq.registry_groups():
            if (
                await iq.subscription(subscription_id) is not None
                and await iq.resource_group(subscription_id, group) is None
            ):
                await iq.add_resource_group(subscription_id, group, state["location"])
    return ServiceIdentity(
        root_id, state["subscription_id"], state["resource_group"], state["location"]
    )
