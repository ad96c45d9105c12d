"""The sealed secret store: Key Vault identifiers in their canonical form, values sealed at
rest (never in the row as text, never listed), replaced and deleted; bad input refused
naming the field."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from transship.cache.secrets import SecretStore, secret_identifier
from transship.errors import Invalid, NotFound
from transship.identity.secrets import SecretBox
from transship.metadata import schema as s
from transship.metadata.queries import MetadataStore

ID = "https://myvault.vault.azure.net/secrets/hub-password"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (ID, ID),
        (ID + "/", ID),
        ("HTTPS://MyVault.Vault.Azure.NET/secrets/Hub-Password", ID),
        (ID + "/0123456789abcdef0123456789ABCDEF", ID + "/0123456789abcdef0123456789abcdef"),
        ("https://kv.vault.azure.cn:443/secrets/x", "https://kv.vault.azure.cn:443/secrets/x"),
    ],
)
def test_identifiers_are_canonical(given: str, canonical: str) -> None:
    assert secret_identifier(given) == canonical


@pytest.mark.parametrize(
    "given",
    [
        "hub-password",
        "http://myvault.vault.azure.net/secrets/x",
        "https://myvault.vault.azure.net/keys/x",
        "https://myvault.vault.azure.net/secrets/",
        "https://myvault.vault.azure.net/secrets/a/b/c",
        "https://myvault.vault.azure.net/secrets/under_score",
        "https://user:pw@myvault.vault.azure.net/secrets/x",
        "https://myvault.vault.azure.net/secrets/x?api-version=7.4",
        "https://localhost/secrets/x",
        "https://myvault.vault.azure.net/secrets/" + "x" * 2000,
    ],
)
def test_other_text_is_not_an_identifier(given: str) -> None:
    with pytest.raises(Invalid) as caught:
        secret_identifier(given, "authCredentials.passwordSecretIdentifier")
    assert caught.value.field == "authCredentials.passwordSecretIdentifier"


async def test_values_are_sealed_listed_by_identifier_only_and_replaced(
    meta: MetadataStore,
) -> None:
    store = SecretStore(meta, SecretBox(Fernet.generate_key()))
    info, created = await store.put(ID, "first-value")
    assert created and info.identifier == ID
    again, created = await store.put(ID.upper().replace("HTTPS", "https"), "second-value")
    assert not created and again.identifier == ID
    assert (await store.resolve(ID)).value == "second-value"
    assert "second-value" not in repr(await store.resolve(ID))
    listed = await store.all()
    assert [i.identifier for i in listed] == [ID]
    assert "second-value" not in repr(listed)
    async with meta.reading() as q:
        stored = (await q.conn.execute(select(s.sealed_secrets.c.value))).scalar_one()
    assert b"second-value" not in bytes(stored)
    assert await store.present([ID, ID + "x"]) == {ID}
    assert await store.delete(ID)
    assert not await store.delete(ID)
    with pytest.raises(NotFound):
        await store.resolve(ID)


@pytest.mark.parametrize("value", ["", "two\nlines", "x" * (25 * 1024 + 1)])
async def test_bad_values_are_refused(meta: MetadataStore, value: str) -> None:
    store = SecretStore(meta, SecretBox(Fernet.generate_key()))
    with pytest.raises(Invalid) as caught:
        await store.put(ID, value)
    assert caught.value.field == "value"
    assert value[:20] not in caught.value.message or not value
    assert await store.all() == []
