"""Hashing of stored credentials and encryption of secrets kept for later use."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken

from transship.identity.throttle import RetryLater

# scrypt's cost N for new hashes (16 MiB and ~50 ms of one core each), and the range a
# deployment may choose from (`credential_hash_cost`): every hash records the N it was made
# with, so hashes made before a change keep verifying.
DEFAULT_HASH_COST = 2**14
MIN_HASH_COST, MAX_HASH_COST = 2**10, 2**20
_SCRYPT_R, _SCRYPT_P = 8, 1


def valid_hash_cost(cost: int) -> bool:
    """Whether `cost` is a power of two from MIN_HASH_COST to MAX_HASH_COST."""
    return MIN_HASH_COST <= cost <= MAX_HASH_COST and cost & (cost - 1) == 0


def require_hash_cost(cost: int) -> int:
    """`cost` if it is a valid_hash_cost; ValueError saying what is allowed otherwise."""
    if not valid_hash_cost(cost):
        raise ValueError(
            f"scrypt cost {cost} is not a power of two from {MIN_HASH_COST} to {MAX_HASH_COST}"
        )
    return cost


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # OpenSSL refuses more than 32 MiB unless told: scrypt needs 128 * r * (n + p + 2) bytes,
    # and a margin covers the allocator's own.
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def hash_secret(secret: str, cost: int = DEFAULT_HASH_COST) -> str:
    """A salted scrypt hash of cost N = `cost`, self-describing: `scrypt$n$r$p$salt$hash`
    (base64). Raises ValueError when `cost` is not a valid_hash_cost."""
    salt = os.urandom(16)
    digest = _scrypt(secret, salt, require_hash_cost(cost), _SCRYPT_R, _SCRYPT_P, 32)
    return "$".join(["scrypt", str(cost), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time check of `secret` against a `hash_secret` value, whatever cost it was
    made with; False if malformed (a cost outside the valid range included)."""
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt" or not valid_hash_cost(int(n)):
            return False
        digest = _scrypt(secret, _unb64(salt), int(n), int(r), int(p), len(_unb64(expected)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


_T = TypeVar("_T")
HASHER_THREAD_PREFIX = "credential-hash"


class CredentialChecksBusy(RetryLater):
    """Every credential-hashing thread is busy and the queue of waiting checks is full."""


class SecretHasher:
    """Runs every scrypt hash and verification of the server on a small pool of its own, so
    that a flood of credential checks (password guessing) cannot starve the default thread
    pool that blob writes and file work use. At most `workers` hashes run at once and
    `max_waiting` more wait; beyond that a check is refused at once with
    CredentialChecksBusy rather than queued without bound. Built by the composition root and
    closed with the services. New hashes cost `cost` (scrypt's N, see hash_secret).
    Raises ValueError for fewer than one worker, a negative max_waiting or an invalid cost."""

    def __init__(
        self, workers: int = 2, max_waiting: int = 64, cost: int = DEFAULT_HASH_COST
    ) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError("workers must be at least 1 and max_waiting not negative")
        self._cost = require_hash_cost(cost)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=HASHER_THREAD_PREFIX)
        self._capacity = workers + max_waiting
        self._in_flight = 0
        # Counted down from a worker thread when a job ends, so guarded by a lock.
        self._lock = threading.Lock()

    async def hash(self, secret: str) -> str:
        """`hash_secret(secret, cost)` on the pool. Raises CredentialChecksBusy when it is
        full."""
        return await self._run(hash_secret, secret, self._cost)

    async def verify(self, secret: str, encoded: str) -> bool:
        """`verify_secret(secret, encoded)` on the pool. Raises CredentialChecksBusy when it
        is full."""
        return await self._run(verify_secret, secret, encoded)

    async def _run(self, function: Callable[..., _T], *args: str | int) -> _T:
        with self._lock:
            if self._in_flight >= self._capacity:
                raise CredentialChecksBusy(
                    1, "too many credential checks in flight; retry in a moment"
                )
            self._in_flight += 1
        try:
            job = self._pool.submit(function, *args)
        except BaseException:
            self._done(None)
            raise
        # Counted down when the job ends, not when the awaiting request does: a client that
        # disconnects mid-check leaves its hash running, and it still occupies a thread.
        job.add_done_callback(self._done)
        return await asyncio.wrap_future(job)

    def _done(self, _job: Future[Any] | None) -> None:
        with self._lock:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop the threads; waiting checks are cancelled, a running hash is finished."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def new_secret() -> str:
    """256 random bits, URL-safe. Never starting with '-', which command lines would read as
    an option (`docker login -p -x…`)."""
    while True:
        value = secrets.token_urlsafe(32)
        if not value.startswith("-"):
            return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_private_file(path: Path, content: str) -> None:
    """Create `path` with mode 0600 (never readable by others, even for an instant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


class SecretBox:
    """Encrypts secrets at rest (upstream credentials a job keeps for resuming)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """Load the service key, creating it (mode 0600) on first use."""
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        """Raises ValueError when the data was not sealed with this key."""
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise ValueError("sealed secret cannot be opened with this service key") from None
