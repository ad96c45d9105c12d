"""`transship.identity.tokens`: the RS256 signing keys (JWKS, rotation, sharing between
processes through the database) and TokenService's issue and verify, on a SQLite file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import types
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from transship.identity import tokens as tokens_module
from transship.identity.secrets import SecretBox
from transship.identity.tokens import MAX_TOKEN_LIFETIME, SigningKeys, TokenInvalid, TokenService
from transship.metadata import identity as identity_queries
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow

AUDIENCE = "https://service.example/"
ISSUER = "https://service.example/tenant/v2.0"


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        yield MetadataStore(database)
    finally:
        await database.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
async def keys(meta: MetadataStore, box: SecretBox) -> SigningKeys:
    loaded = SigningKeys(meta, box)
    await loaded.load()
    return loaded


@pytest.fixture
def service(keys: SigningKeys) -> TokenService:
    return TokenService(keys)


def claims(**extra: Any) -> dict[str, Any]:
    return {"aud": AUDIENCE, "iss": ISSUER, "sub": "someone", **extra}


def timed(offset: int = 0, lifetime: int = 3600, **extra: Any) -> dict[str, Any]:
    """Claims issued `offset` seconds from now, valid for `lifetime` seconds."""
    now = int(time.time()) + offset
    return claims(iat=now, nbf=now, exp=now + lifetime, **extra)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def verify(service: TokenService, token: str, audience: str = AUDIENCE) -> dict[str, Any]:
    return await service.verify(token, audiences={audience})


# -- keys --------------------------------------------------------------------------------------


async def test_load_creates_one_key_and_reloading_keeps_it(
    meta: MetadataStore, box: SecretBox, keys: SigningKeys
) -> None:
    (only,) = keys.jwks()["keys"]
    again = SigningKeys(meta, box)
    await again.load()
    assert again.jwks() == keys.jwks()
    token = keys.sign(timed())
    assert _kid(token) == only["kid"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


async def test_jwks_publishes_the_public_half_only(keys: SigningKeys) -> None:
    (key,) = keys.jwks()["keys"]
    assert set(key) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
    public = keys.public_key(key["kid"])
    assert public is not None
    numbers = public.public_numbers()

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    assert number(key["n"]) == numbers.n and number(key["e"]) == numbers.e == 65537
    assert "=" not in key["n"] + key["e"]  # base64url without padding
    # The kid is derived from the public key (SHA-256 of its DER, shortened).
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key["kid"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:15]).decode()
    # PyJWT reads the JWK and verifies a token with it.
    token = keys.sign(timed())
    assert jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=AUDIENCE)
    assert keys.public_key("no-such-kid") is None


async def test_private_keys_are_sealed_at_rest(meta: MetadataStore, keys: SigningKeys) -> None:
    async with meta.reading() as q:
        (record,) = await q.identity.signing_keys()
    assert b"PRIVATE KEY" not in record.private_key
    # Another service key cannot open them.
    with pytest.raises(Exception):  # noqa: B017 - Fernet's InvalidToken or a wrapper
        await SigningKeys(meta, SecretBox(Fernet.generate_key())).load()


async def test_rotation_signs_with_the_new_key_and_keeps_verifying_the_old(
    keys: SigningKeys, service: TokenService
) -> None:
    old_token, _ = service.issue(claims(), timedelta(minutes=5))
    old_kid = _kid(old_token)
    new_kid = await keys.rotate()
    assert new_kid != old_kid
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old_kid, new_kid}
    new_token, _ = service.issue(claims(), timedelta(minutes=5))
    assert _kid(new_token) == new_kid
    assert (await verify(service, old_token))["sub"] == "someone"
    assert (await verify(service, new_token))["sub"] == "someone"
    third = await keys.rotate()
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old_kid, new_kid, third}
    assert _kid(service.issue(claims(), timedelta(minutes=5))[0]) == third


async def test_another_process_picks_up_a_rotation_when_it_meets_the_new_kid(
    meta: MetadataStore, box: SecretBox, keys: SigningKeys, service: TokenService
) -> None:
    other = SigningKeys(meta, box)  # a second server process of the same service
    await other.load()
    new_kid = await other.rotate()
    token = other.sign(timed())
    assert keys.public_key(new_kid) is None  # not known here yet ...
    assert (await verify(service, token))["sub"] == "someone"  # ... verify refreshes
    assert keys.public_key(new_kid) is not None
    # And from then on this process signs with the new key too.
    assert _kid(keys.sign(timed())) == new_kid


async def test_retired_keys_are_dropped_a_token_lifetime_after_retiring(
    monkeypatch: pytest.MonkeyPatch, keys: SigningKeys, service: TokenService
) -> None:
    first = keys.jwks()["keys"][0]["kid"]
    second = await keys.rotate()  # retires `first` now
    # A day and a minute later (both clocks: the cutoff's and the retirement stamp's) ...
    later = utcnow() + MAX_TOKEN_LIFETIME + timedelta(minutes=1)
    monkeypatch.setattr(tokens_module, "utcnow", lambda: later)
    monkeypatch.setattr(identity_queries, "utcnow", lambda: later)
    third = await keys.rotate()  # ... retires `second` and drops `first`
    kids = {k["kid"] for k in keys.jwks()["keys"]}
    assert kids == {second, third}, (first, kids)


# -- issue and verify --------------------------------------------------------------------------


async def test_issue_adds_times_and_an_id(service: TokenService) -> None:
    before = int(time.time())
    token, seconds = service.issue(claims(extra="kept"), timedelta(minutes=10))
    assert seconds == 600
    body = await verify(service, token)
    assert body["extra"] == "kept" and body["aud"] == AUDIENCE and body["iss"] == ISSUER
    assert before <= body["iat"] == body["nbf"] <= int(time.time())
    assert body["exp"] == body["iat"] + 600
    uuid.UUID(body["jti"])
    other, _ = service.issue(claims(), timedelta(minutes=10))
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != body["jti"]


def test_issue_refuses_a_lifetime_beyond_the_maximum(service: TokenService) -> None:
    with pytest.raises(AssertionError):
        service.issue(claims(), MAX_TOKEN_LIFETIME + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("token_audience", "accepted"),
    [
        (AUDIENCE, True),
        (AUDIENCE.rstrip("/"), True),  # trailing slash ignored, both ways
        ("HTTPS://SERVICE.EXAMPLE", True),  # case-insensitive
        ("https://service.example//", True),
        ("https://service.example:443/", False),
        ("https://service.example.evil/", False),
        ("https://other.example/", False),
        ("", False),
    ],
)
async def test_audience(service: TokenService, token_audience: str, accepted: bool) -> None:
    token = service.keys.sign(timed(aud=token_audience))
    if accepted:
        assert await verify(service, token)
    else:
        with pytest.raises(TokenInvalid, match="audience"):
            await verify(service, token)


async def test_any_of_several_audiences(service: TokenService) -> None:
    token = service.keys.sign(timed(aud="b"))
    assert await service.verify(token, audiences={"a", "b"})
    with pytest.raises(TokenInvalid):
        await service.verify(token, audiences={"a", "c"})
    with pytest.raises(TokenInvalid):
        await service.verify(token, audiences=set())


async def test_a_cached_token_is_checked_again_for_audience_and_issuer(
    service: TokenService,
) -> None:
    token = service.keys.sign(timed())
    assert await verify(service, token)  # now in the verified-token cache
    with pytest.raises(TokenInvalid, match="audience"):
        await verify(service, token, "https://other.example/")
    with pytest.raises(TokenInvalid, match="issuer"):
        await service.verify(token, audiences={AUDIENCE}, issuers={"https://other/"})
    assert await service.verify(token, audiences={AUDIENCE}, issuers={ISSUER})


async def test_issuer_is_checked_only_when_asked(service: TokenService) -> None:
    token = service.keys.sign(timed(iss="https://someone-else/"))
    assert await verify(service, token)
    with pytest.raises(TokenInvalid, match="issuer"):
        await service.verify(token, audiences={AUDIENCE}, issuers={ISSUER})


@pytest.mark.parametrize(
    ("expired_seconds_ago", "accepted"),
    [(-60, True), (0, True), (20, True), (45, False), (3600, False)],
)
async def test_expiry_allows_thirty_seconds_of_clock_skew(
    service: TokenService, expired_seconds_ago: int, accepted: bool
) -> None:
    token = service.keys.sign(timed(offset=-3600 - expired_seconds_ago, lifetime=3600))
    if accepted:
        assert await verify(service, token)
    else:
        with pytest.raises(TokenInvalid, match="expired"):
            await verify(service, token)


async def test_a_cached_token_still_expires(
    monkeypatch: pytest.MonkeyPatch, service: TokenService
) -> None:
    token = service.keys.sign(timed(lifetime=60))
    assert await verify(service, token)
    now = time.time()
    fake = types.SimpleNamespace(time=lambda: now + 120, monotonic=time.monotonic)
    monkeypatch.setattr(tokens_module, "time", fake)
    with pytest.raises(TokenInvalid, match="expired"):
        await verify(service, token)


async def test_not_yet_valid_tokens_are_refused(service: TokenService) -> None:
    token = service.keys.sign(timed(offset=600))
    with pytest.raises(TokenInvalid):
        await verify(service, token)


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud"])
async def test_required_claims(service: TokenService, missing: str) -> None:
    body = {k: v for k, v in timed().items() if k != missing}
    with pytest.raises(TokenInvalid):
        await verify(service, service.keys.sign(body))


async def test_forgeries_are_refused(service: TokenService) -> None:
    real = service.keys.sign(timed())
    kid = _kid(real)
    # On a thread: a 2048-bit key takes 50 to 500 ms of CPU, and the stall guard watches this
    # loop too.
    other = await asyncio.to_thread(rsa.generate_private_key, 65537, 2048)
    public = service.keys.public_key(kid)
    assert public is not None
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(timed()).encode())
    hs256 = f"{header}.{payload}." + _b64(
        hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    )
    head, _, signature = real.split(".")
    forgeries = {
        "another key, same kid": jwt.encode(timed(), other, "RS256", {"kid": kid}),
        "another key, no kid": jwt.encode(timed(), other, "RS256"),
        "alg none": jwt.encode(timed(), "", algorithm="none", headers={"kid": kid}),
        "HS256 keyed with the public key": hs256,
        "real signature, other payload": f"{head}.{payload}.{signature}",
        "no signature": f"{head}.{real.split('.')[1]}.",
        "garbage": "a.b.c",
        "empty": "",
        "not ascii": "é.é.é",
    }
    for name, token in forgeries.items():
        with pytest.raises(TokenInvalid):
            await verify(service, token)
            pytest.fail(name)
    assert await verify(service, real)


async def test_keys_are_generated_and_parsed_off_the_event_loop(
    meta: MetadataStore, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generating an RSA key costs 50 to 500 ms of CPU and parsing one about 35 ms: on the
    loop's thread they would stall every request at start-up, rotation and refresh."""
    threads: list[int] = []
    generate, parse = rsa.generate_private_key, serialization.load_pem_private_key

    def recording_generate(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return generate(*args, **kwargs)

    def recording_parse(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return parse(*args, **kwargs)

    monkeypatch.setattr(tokens_module.rsa, "generate_private_key", recording_generate)
    monkeypatch.setattr(tokens_module.serialization, "load_pem_private_key", recording_parse)
    keys = SigningKeys(meta, box)
    await keys.load()
    await keys.rotate()
    await keys.refresh()
    assert len(threads) >= 5  # two keys made, three loads of one or two keys
    assert threading.get_ident() not in threads
