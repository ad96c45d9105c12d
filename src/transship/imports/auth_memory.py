"""What the upstream clients of one process learnt about upstreams' authentication, kept
for the next client that talks to the same upstream with the same credentials.

Every pull through a cache rule, tag re-check, import and sync run opens a client of its
own. Without this, each began with an unauthenticated request, its 401, a token request to
the realm (often another host: another TLS handshake) and the retry: four round trips
before the first answer. A client that starts from what an earlier one learnt sends the
token, or Basic, up front: one round trip while the token lives.

Everything is keyed by a fingerprint of the credentials (an HMAC of user name and password
under a key drawn for this process, never the secret itself), so a token issued for one
set of credentials, or for anonymous access, is never sent on behalf of another. Entries
are bounded (least recently used dropped first); tokens expire as `TokenCache` has it, and
a token the upstream refuses is dropped there by the client that saw the refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from transship.imports.challenge import Challenge, TokenCache, TokenKey
from transship.imports.ports import Credentials

# Credential sets remembered at once (each with its own token cache), and (credentials,
# origin, repository) triples whose challenge is remembered: far above what one service
# talks to, and a few hundred KiB at most.
MAX_IDENTITIES = 256
MAX_LEARNT = 4096
# Tokens kept per credential set (one per realm, service and scope set).
MAX_TOKENS_PER_IDENTITY = 1024

# An upstream origin: scheme, lower-cased host, port (None: the scheme's).
Origin = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class LearntAuth:
    """How an upstream origin asked a repository's requests to authenticate last time: a
    bearer challenge and the scopes it named, or HTTP Basic."""

    bearer: Challenge | None
    scopes: tuple[str, ...]
    basic: bool


class UpstreamAuthMemory:
    """Token caches and learnt challenges by credentials (see the module docstring). Used
    on the event loop only; never raises."""

    def __init__(
        self,
        *,
        max_identities: int = MAX_IDENTITIES,
        max_learnt: int = MAX_LEARNT,
        max_tokens: int = MAX_TOKENS_PER_IDENTITY,
    ) -> None:
        self._key = os.urandom(32)
        self._max_identities = max_identities
        self._max_learnt = max_learnt
        self._max_tokens = max_tokens
        self._tokens: OrderedDict[str, TokenCache] = OrderedDict()
        self._learnt: OrderedDict[tuple[str, Origin, str], LearntAuth] = OrderedDict()
        # Held only while a fetch holds or waits for one: nothing to bound.
        self._locks: weakref.WeakValueDictionary[tuple[str, TokenKey], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def identity(self, credentials: Credentials | None) -> str:
        """The fingerprint under which `credentials` (None: anonymous) are remembered."""
        if credentials is None:
            return "anonymous"
        secret = f"{credentials.username or ''}\0{credentials.password}".encode()
        return hmac.new(self._key, secret, hashlib.sha256).hexdigest()

    def tokens(self, identity: str) -> TokenCache:
        """The token cache of one set of credentials (created empty on first use)."""
        cache = self._tokens.get(identity)
        if cache is None:
            cache = self._tokens[identity] = TokenCache(limit=self._max_tokens)
            while len(self._tokens) > self._max_identities:
                self._tokens.popitem(last=False)
        else:
            self._tokens.move_to_end(identity)
        return cache

    def token_lock(self, identity: str, key: TokenKey) -> asyncio.Lock:
        """The lock under which a token for `key` is fetched for these credentials, so that
        concurrent clients fetch it once (the others then find it in the cache)."""
        lock = self._locks.get((identity, key))
        if lock is None:
            lock = self._locks[(identity, key)] = asyncio.Lock()
        return lock

    def learnt(self, identity: str, origin: Origin, repository: str) -> LearntAuth | None:
        """What `origin` asked of `repository`'s requests under these credentials last."""
        key = (identity, origin, repository)
        found = self._learnt.get(key)
        if found is not None:
            self._learnt.move_to_end(key)
        return found

    def learn(self, identity: str, origin: Origin, repository: str, auth: LearntAuth) -> None:
        """Remember how `origin` asked `repository`'s requests to authenticate."""
        key = (identity, origin, repository)
        self._learnt[key] = auth
        self._learnt.move_to_end(key)
        while len(self._learnt) > self._max_learnt:
            self._learnt.popitem(last=False)
