"""At DEBUG, nothing logs SQL parameters: creating a service principal and a registry token
(whose secrets are stored as scrypt hashes) leaves no hash, and no secret, in any record."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.support.app import make_settings, running_registry
from tests.support.identity import IdentityClient, owner_credential, registry_token
from transship.metadata.db import Database


async def test_debug_logs_carry_no_hashes_or_secrets(
    tmp_path: Path, database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As an operator asking for SQL logs would: every statement logged, with its parameters
    # if the engine allowed it.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    async with running_registry(make_settings(tmp_path, database_url, data_plane_auth=True)) as reg:
        owner = IdentityClient(reg.http, reg.url, owner_credential(tmp_path))
        subscription = owner.credential.subscription_id
        await owner.create_group(subscription, "logs")
        created = await owner.create_registry(subscription, "logs", "logsreg")
        await reg.services.resolver.refresh()
        principal = await owner.create_service_principal("logged")
        password = await owner.create_token(
            created["id"], "logged-token", ["repositories/app/content/read"]
        )
        host = created["properties"]["loginServer"]
        status, body = await registry_token(
            reg.http, reg.url, principal.basic, ["repository:app:pull"], host
        )
        assert status in (200, 401), body  # a sign-in checks the hash either way
    # The run did log its SQL (the capture is not simply empty): statements, never parameters.
    statements = [r for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert statements and any("hide_parameters" in r.getMessage() for r in statements)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert "scrypt$" not in text, (record.name, text[:300])
        for secret in (principal.secret, password):
            assert secret not in text, record.name


async def test_a_failed_statement_does_not_quote_its_parameters(
    tmp_path: Path, database_url: str | None
) -> None:
    # An error's message is what error_middleware logs with its traceback.
    db = Database(database_url or f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE hygiene (secret TEXT UNIQUE)"))
            await conn.execute(
                text("INSERT INTO hygiene VALUES (:s)"), {"s": "scrypt$1$2$3$salt$hash"}
            )
        with pytest.raises(IntegrityError) as raised:
            async with db.write() as conn:
                await conn.execute(
                    text("INSERT INTO hygiene VALUES (:s)"), {"s": "scrypt$1$2$3$salt$hash"}
                )
        assert "scrypt$" not in str(raised.value)
        assert "hidden" in str(raised.value)
    finally:
        await db.close()
