"""What the first start creates: the default subscription and resource group, and the
bootstrap admin credential (until principals and RBAC arrive)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from transship.identity.secrets import hash_secret, new_secret, verify_secret, write_private_file
from transship.metadata.queries import MetadataStore

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
DEFAULT_RESOURCE_GROUP = "default"
DEFAULT_LOCATION = "local"


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    subscription_id: str
    resource_group: str
    location: str
    admin_password_hash: str


class AdminVerifier:
    """Checks the admin credential. scrypt is deliberately slow (~0.1 s), so a credential
    once verified is remembered by its SHA-256 (never the secret itself), and checks run in a
    worker thread: a client polling an operation must not stall the event loop."""

    def __init__(self, identity: ServiceIdentity) -> None:
        self._hash = identity.admin_password_hash
        self._verified: set[bytes] = set()

    async def allows(self, username: str, password: str) -> bool:
        if username != ADMIN_USERNAME:
            return False
        fingerprint = hashlib.sha256(password.encode()).digest()
        if fingerprint in self._verified:
            return True
        if await asyncio.to_thread(verify_secret, password, self._hash):
            self._verified.add(fingerprint)
            return True
        return False


async def bootstrap(meta: MetadataStore, credential_file: Path) -> ServiceIdentity:
    """Load the service identity, creating it on first start.

    A new admin password is written once to `credential_file` (mode 0600) and only its hash
    is stored; it is never logged.
    """
    async with meta.writing() as q:
        state = await q.service_state()
        if "subscription_id" not in state:
            state["subscription_id"] = str(uuid.uuid4())
            state["resource_group"] = DEFAULT_RESOURCE_GROUP
            state["location"] = DEFAULT_LOCATION
            password = new_secret()
            state["admin_password_hash"] = hash_secret(password)
            write_private_file(credential_file, json.dumps({"username": ADMIN_USERNAME, "password": password}) + "\n")
            await q.set_service_state(state)
            log.info("first start: bootstrap admin credential written to %s", credential_file)
        await q.adopt_orphan_registries(state["subscription_id"], state["resource_group"])
    return ServiceIdentity(
        state["subscription_id"], state["resource_group"], state["location"], state["admin_password_hash"]
    )
