"""`WWW-Authenticate` challenges and the bearer-token cache of the upstream client.

Pure helpers: parsing (RFC 7235 challenges, several per header and several headers) and a
token cache keyed by realm, service and scope set, with expiry on an injected clock (shared
by the clients of one set of credentials through `auth_memory.UpstreamAuthMemory`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PARAM = re.compile(r"""([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^\s,]*)""")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_QUOTED_PAIR = re.compile(r"\\(.)")

# A token's key in a TokenCache: realm, service, scope set.
TokenKey = tuple[str, str, frozenset[str]]

# The default lifetime of a token whose response gives none (distribution's token spec).
DEFAULT_TOKEN_LIFETIME = 60.0


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: lower-cased scheme and parameters (names lower-cased)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The `scope` parameter split at spaces (several scopes may share one parameter)."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Parse every challenge in the given `WWW-Authenticate` header values, in order.

    Tolerates what registries send in practice: quoted or bare values, spaces around `=`,
    several challenges in one header. Unparseable fragments are skipped, never raised.
    """
    out: list[Challenge] = []
    for text in headers:
        pos = 0
        while pos < len(text):
            pos = _skip(text, pos, " \t,")
            scheme = _TOKEN.match(text, pos)
            if scheme is None:
                # Garbage: skip to the next comma and try again.
                nxt = text.find(",", pos)
                if nxt < 0:
                    break
                pos = nxt + 1
                continue
            pos = scheme.end()
            params: dict[str, str] = {}
            after_scheme = _skip(text, pos, " \t")
            if after_scheme < len(text) and text[after_scheme] == "=":
                # "token=..." where a scheme was expected: not a challenge; skip it.
                nxt = text.find(",", pos)
                pos = len(text) if nxt < 0 else nxt + 1
                continue
            pos = after_scheme
            # token68 ("Negotiate abc123==") ends in '=' only as padding; a param has a value.
            token68 = _TOKEN68.fullmatch(text, pos, _end_of_item(text, pos))
            if token68 is not None:
                pos = token68.end()
            else:
                while pos < len(text):
                    param = _PARAM.match(text, pos)
                    if param is None:
                        break
                    params[param.group(1).lower()] = _unquote(param.group(2))
                    pos = _skip(text, param.end(), " \t")
                    if pos < len(text) and text[pos] == ",":
                        look = _skip(text, pos + 1, " \t,")
                        if _PARAM.match(text, look) is None:
                            pos = look  # the next item is a new challenge
                            break
                        pos = look
            out.append(Challenge(scheme.group(0).lower(), params))
    return out


def _end_of_item(text: str, pos: int) -> int:
    comma = text.find(",", pos)
    return len(text) if comma < 0 else comma


@dataclass(frozen=True, slots=True)
class CachedToken:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens by (realm, service, scopes), valid until shortly before they expire;
    at most `limit` of them (None: no bound), the expired and then the oldest dropped first."""

    def __init__(self, *, limit: int | None = None) -> None:
        self._tokens: dict[TokenKey, CachedToken] = {}
        self._limit = limit

    @staticmethod
    def key(realm: str, service: str | None, scopes: Iterable[str]) -> TokenKey:
        return (realm, service or "", frozenset(scopes))

    def get(self, key: TokenKey, now: float) -> str | None:
        """The token for `key` if it is still valid at `now`, else None."""
        cached = self._tokens.get(key)
        if cached is None or cached.expires_at <= now:
            return None
        return cached.value

    def put(self, key: TokenKey, value: str, expires_in: float, now: float) -> None:
        """Keep `value` until a little before `now + expires_in` (10 %, at most 10 s early)."""
        margin = min(10.0, expires_in * 0.1)
        self._tokens.pop(key, None)  # re-inserted: the newest
        self._tokens[key] = CachedToken(value, now + expires_in - margin)
        if self._limit is not None and len(self._tokens) > self._limit:
            for stale in [k for k, t in self._tokens.items() if t.expires_at <= now]:
                del self._tokens[stale]
            while len(self._tokens) > self._limit:
                del self._tokens[next(iter(self._tokens))]

    def __len__(self) -> int:
        return len(self._tokens)

    def drop(self, key: TokenKey, value: str) -> None:
        """Forget `value` for `key` (the upstream refused it); keeps a newer token."""
        cached = self._tokens.get(key)
        if cached is not None and cached.value == value:
            del self._tokens[key]
