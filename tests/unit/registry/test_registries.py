"""Registries and their login servers: derived by the service, never chosen by a caller."""

from __future__ import annotations

import pytest

from transship.errors import Conflict, Invalid, NotFound
from transship.metadata.queries import MetadataStore
from transship.registry.registries import RegistryService, canonical_host
from transship.registry.resolver import RegistryResolver

SUFFIX = "localhost:5000"
RESERVED = ("localhost:5000", "127.0.0.1:5000", "docker.io", "registry.example:443")


@pytest.fixture
def registries(meta: MetadataStore) -> RegistryService:
    return RegistryService(meta, SUFFIX, RESERVED)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("VictimReg.LocalHost:5000", "victimreg.localhost:5000"),
        ("victimreg.localhost.:5000", "victimreg.localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("docker.io", "docker.io"),
        ("victimreg.localhost:5000/", None),
        ("victimreg.localhost:5000/x", None),
        ("user@victimreg.localhost", None),
        ("victimreg.localhost\r", None),
        (" victimreg.localhost", None),
        ("", None),
    ],
)
def test_canonical_host(value: str, canonical: str | None) -> None:
    assert canonical_host(value) == canonical


async def test_login_server_is_derived_from_the_name(registries: RegistryService) -> None:
    record, created = await registries.create("sub", "rg", "MyRegistry", "local")
    assert created and record.login_server == "myregistry.localhost:5000"
    assert record.uid and len(record.uid) == 32
    # Sending the derived value (in any case) is accepted, as a read-only property echoed back.
    again, created = await registries.create(
        "sub", "rg", "MyRegistry", "local", "MYREGISTRY.localhost:5000"
    )
    assert not created and again == record


@pytest.mark.parametrize(
    "login_server",
    [
        "victimreg.localhost:5000",
        "victimreg.localhost:5000/",
        "docker.io",
        "mcr.microsoft.com",
        "127.0.0.1:5000",
        "localhost:5000",
        "attacker.localhost:5000 ",
    ],
)
async def test_a_chosen_login_server_is_refused_and_nothing_is_created(
    registries: RegistryService, meta: MetadataStore, login_server: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await registries.create("sub", "rg", "attacker", "local", login_server)
    assert (caught.value.field, caught.value.reason) == ("properties.loginServer", None)
    assert "attacker.localhost:5000" in caught.value.message
    assert await registries.get("attacker") is None
    async with meta.reading() as q:
        assert await q.registries() == []


async def test_names_are_unique_in_any_case(registries: RegistryService) -> None:
    await registries.create("subA", "rg", "victimreg", "local")
    with pytest.raises(Conflict) as caught:
        await registries.create("subB", "rg", "VictimReg", "local")
    assert (caught.value.subject, caught.value.reason) == ("registry", "name_taken")
    assert caught.value.field == "name"
    found = await registries.get("VICTIMREG")
    assert found is not None and found.subscription_id == "subA"


async def test_a_name_whose_login_server_is_reserved_is_refused(meta: MetadataStore) -> None:
    """With a suffix like `example:443`, the name `registry` would land on a host the
    service or an upstream owns."""
    registries = RegistryService(meta, "example:443", RESERVED)
    with pytest.raises(Invalid) as caught:
        await registries.create("sub", "rg", "registry", "local")
    assert (caught.value.field, caught.value.reason) == ("name", "registry_name")
    assert await registries.get("registry") is None


async def test_a_deleted_name_is_free_again_with_a_new_uid(registries: RegistryService) -> None:
    first, _ = await registries.create("subA", "rg", "reusedname", "local")
    await registries.delete(first)
    second, created = await registries.create("subB", "rg", "reusedname", "local")
    assert created and second.login_server == first.login_server
    assert second.uid != first.uid


# -- routing -----------------------------------------------------------------------------------


async def test_hosts_reach_their_registry_or_the_default_one_never_a_stranger(
    meta: MetadataStore, registries: RegistryService
) -> None:
    resolver = RegistryResolver(meta, "default", SUFFIX)
    await resolver.start()
    mine, _ = await registries.create("sub", "rg", "mine1", "local")
    await resolver.refresh()
    default = await resolver.for_host("127.0.0.1:5000")
    assert default.is_default
    for host in ("localhost:5000", "[::1]:5000", "proxy.example.com", None, "bad host/"):
        assert (await resolver.for_host(host)).id == default.id, host
    assert (await resolver.for_host("default.localhost:5000")).id == default.id
    for host in ("mine1.localhost:5000", "MINE1.LocalHost:5000", "mine1.localhost.:5000"):
        assert (await resolver.for_host(host)).id == mine.id, host
    # A name under the suffix that no registry has is an error, not the default registry,
    # so a registry created under that name later takes nothing over.
    with pytest.raises(NotFound) as caught:
        await resolver.for_host("nosuchreg.localhost:5000")
    assert (caught.value.subject, caught.value.name) == ("registry", "nosuchreg.localhost:5000")
    # A registry another process created is found at once, without waiting for the cache.
    later, _ = await registries.create("sub", "rg", "later1", "local")
    assert (await resolver.for_host("later1.localhost:5000")).id == later.id
