"""Signed tokens: the RS256 keys every token is signed with, their JWKS, issue and verify.

One key is active and signs; retired keys stay published and keep verifying until every
token they signed has expired, so a rotation never invalidates a token in flight.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from transship.identity.secrets import SecretBox
from transship.metadata.changes import Topic
from transship.metadata.queries import MetadataStore
from transship.metadata.scope import utcnow
from transship.registry.registries import canonical_host

# Longest lifetime of any token issued; a retired key is dropped this long after retiring.
MAX_TOKEN_LIFETIME = timedelta(hours=24)
_CLOCK_SKEW_SECONDS = 30
_VERIFIED_CACHE_SIZE = 4096
# A token with an unknown key id reloads the keys at most this often.
_UNKNOWN_KID_REFRESH_SECONDS = 5.0


class TokenInvalid(Exception):
    """A token that is malformed, badly signed, expired, or meant for someone else. The
    message says which, without echoing the token."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    private: rsa.RSAPrivateKey
    retired: bool


def new_signing_key() -> rsa.RSAPrivateKey:
    """A new RSA-2048 key for RS256. CPU work of ~50 to 500 ms: callers run it on a thread."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64u(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class SigningKeys:
    """The service's token-signing keys, kept in the metadata database (private halves sealed
    with the service key) so every server process of a service signs and verifies alike."""

    def __init__(self, meta: MetadataStore, box: SecretBox) -> None:
        self._meta = meta
        self._box = box
        self._keys: dict[str, _Key] = {}
        self._active: _Key | None = None
        # Set when any process added a key: the next token with an unknown key id reloads
        # the keys at once, whatever the reload rate limit says.
        self.rotated = False
        meta.changes.subscribe(Topic.SIGNING_KEYS, self._rotated)

    def _rotated(self) -> None:
        self.rotated = True

    # Generating an RSA key (~50 to 500 ms) is CPU work that would hold the event loop: it
    # runs on a thread, and so does parsing (cheap, but one per key at every refresh).

    async def load(self) -> None:
        """Load the keys, creating the first one on a new service."""
        async with self._meta.writing() as q:
            iq = q.identity
            records = await iq.signing_keys()
            if not any(r.retired_at is None for r in records):
                await iq.add_signing_key(*await asyncio.to_thread(self._new_sealed_key))
                records = await iq.signing_keys()
        await self._install(records)

    async def rotate(self) -> str:
        """Make a new key active; the previous ones keep verifying. Returns the new kid."""
        kid, sealed = await asyncio.to_thread(self._new_sealed_key)
        async with self._meta.writing() as q:
            iq = q.identity
            await iq.add_signing_key(kid, sealed)
            await iq.retire_signing_keys(kid)
            await iq.drop_signing_keys_retired_before(utcnow() - MAX_TOKEN_LIFETIME)
            records = await iq.signing_keys()
        await self._install(records)
        return kid

    async def refresh(self) -> None:
        """Pick up keys another process rotated in."""
        # Cleared before the read: a key announced during it sets the flag again.
        self.rotated = False
        try:
            async with self._meta.reading() as q:
                records = await q.identity.signing_keys()
            await self._install(records)
        except BaseException:
            self.rotated = True
            raise

    def _new_sealed_key(self) -> tuple[str, bytes]:
        key = new_signing_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(public).digest()[:15]).decode()
        return kid, self._box.seal(pem)

    async def _install(self, records: list[Any]) -> None:
        self._keys, self._active = await asyncio.to_thread(self._parse, records)

    def _parse(self, records: list[Any]) -> tuple[dict[str, _Key], _Key]:
        keys: dict[str, _Key] = {}
        active = None
        for record in records:
            # Without OpenSSL's consistency check of the key (~35 ms of CPU each): the key
            # was generated here and sealed by the box, whose authenticated encryption
            # already refuses any key that was not (SecretBox.open raises).
            private = serialization.load_pem_private_key(
                self._box.open(record.private_key),
                password=None,
                unsafe_skip_rsa_key_validation=True,
            )
            assert isinstance(private, rsa.RSAPrivateKey)
            key = _Key(record.kid, private, record.retired_at is not None)
            keys[key.kid] = key
            if not key.retired:
                active = key  # the newest unretired key signs
        assert active is not None, "no active signing key"
        return keys, active

    def jwks(self) -> dict[str, Any]:
        """The public keys, active and retired, as a JSON Web Key Set."""
        out = []
        for key in self._keys.values():
            numbers = key.private.public_key().public_numbers()
            out.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": key.kid,
                    "n": _b64u(numbers.n),
                    "e": _b64u(numbers.e),
                }
            )
        return {"keys": out}

    def sign(self, claims: dict[str, Any]) -> str:
        assert self._active is not None, "signing keys used before load()"
        return jwt.encode(
            claims,
            self._active.private,
            algorithm="RS256",
            headers={"kid": self._active.kid, "typ": "JWT"},
        )

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(kid)
        return None if key is None else key.private.public_key()


class TokenService:
    """Issues and verifies JWTs. Verified tokens are remembered (by their SHA-256) until
    they expire: the data plane verifies a bearer token on every request."""

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys
        self._verified: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self._refreshed_at = 0.0

    def issue(self, claims: dict[str, Any], lifetime: timedelta) -> tuple[str, int]:
        """Sign `claims` plus iat/nbf/exp/jti; returns the token and its lifetime in seconds."""
        assert lifetime <= MAX_TOKEN_LIFETIME
        now = int(time.time())
        seconds = int(lifetime.total_seconds())
        body = {**claims, "iat": now, "nbf": now, "exp": now + seconds, "jti": str(uuid.uuid4())}
        return self.keys.sign(body), seconds

    async def verify(
        self, token: str, *, audiences: set[str], issuers: set[str] | None = None
    ) -> dict[str, Any]:
        """The claims of a valid token. Raises TokenInvalid when the signature, expiry,
        audience (any of `audiences`, compared exactly in canonical form: see
        `canonical_audience`) or issuer (exactly one of `issuers`, when given) is wrong."""
        fingerprint = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        claims = self._verified.get(fingerprint)
        if claims is None:
            claims = await self._decode(token)
            self._verified[fingerprint] = claims
            if len(self._verified) > _VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        if claims["exp"] + _CLOCK_SKEW_SECONDS < time.time():
            self._verified.pop(fingerprint, None)
            raise TokenInvalid("the token has expired")
        audience = canonical_audience(str(claims.get("aud", "")))
        if audience is None or audience not in {canonical_audience(a) for a in audiences}:
            raise TokenInvalid("the token was issued for another audience")
        if issuers is not None and claims.get("iss") not in issuers:
            raise TokenInvalid("the token was issued by another issuer")
        return claims

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("the token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise TokenInvalid("the token is not signed with RS256")
        kid = str(header.get("kid", ""))
        public = self.keys.public_key(kid)
        if public is None and (
            self.keys.rotated
            or time.monotonic() - self._refreshed_at > _UNKNOWN_KID_REFRESH_SECONDS
        ):
            # Rotated by another process? Reload, but not for every forged kid in a burst
            # (at once when the change feed said a key was added).
            self._refreshed_at = time.monotonic()
            await self.keys.refresh()
            public = self.keys.public_key(kid)
        if public is None:
            raise TokenInvalid("the token is signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "aud"]},
                leeway=_CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("the token has expired") from None
        except jwt.PyJWTError:
            raise TokenInvalid("the token signature or claims are invalid") from None
        return claims


def canonical_audience(audience: str) -> str | None:
    """The canonical form of an audience, or None for one that has none (and so matches
    nothing): a URL keeps its path exactly, but with a lower-case scheme and host and
    without the lone `/` of an empty path (`https://h:1/` is `https://h:1`, the resource the
    Azure CLI asks for) and runs of slashes folded as the token endpoint folds them; a bare
    `host[:port]` (a login server) is its canonical host.
    Nothing else is folded: `victim.example/` is no spelling of `victim.example`."""
    scheme, sep, rest = audience.partition("://")
    if not sep:
        return canonical_host(audience)
    authority, slash, path = rest.partition("/")
    host = canonical_host(authority)
    if host is None or scheme.lower() not in ("http", "https"):
        return None
    tail = re.sub("/+", "/", slash + path)
    return f"{scheme.lower()}://{host}{'' if tail == '/' else tail}"
