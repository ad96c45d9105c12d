"""`WWW-Authenticate` parsing and the token cache."""

from __future__ import annotations

from transship.imports.challenge import Challenge, TokenCache, parse_challenges


def test_docker_hub_bearer_challenge() -> None:
    (challenge,) = parse_challenges(
        [
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"'
        ]
    )
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:library/alpine:pull",)


def test_quoted_commas_spaces_and_several_scopes() -> None:
    (challenge,) = parse_challenges(
        [
            'bearer  Realm = "http://t/token?x=1,y=2" , service=reg ,'
            ' scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"'
        ]
    )
    assert challenge.realm == "http://t/token?x=1,y=2"
    assert challenge.service == "reg"
    assert challenge.scopes == ("repository:a:pull,push", "repository:b:pull")
    assert challenge.error == "insufficient_scope"


def test_several_challenges_in_one_header_and_across_headers() -> None:
    challenges = parse_challenges(
        ['Basic realm="r1", Bearer realm="https://t/token",service="s"', "Negotiate abc123=="]
    )
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
    assert challenges[0].realm == "r1"
    assert challenges[1].params == {"realm": "https://t/token", "service": "s"}
    assert challenges[2].params == {}


def test_escaped_quotes_and_unquoted_scope_values() -> None:
    (challenge,) = parse_challenges(['Basic realm="say \\"hi\\""'])
    assert challenge.realm == 'say "hi"'
    (bearer,) = parse_challenges(["Bearer realm=https://t/token,scope=repository:x/y:pull"])
    assert bearer.realm == "https://t/token"
    assert bearer.scopes == ("repository:x/y:pull",)


def test_garbage_is_skipped_not_raised() -> None:
    assert parse_challenges(["", "   ", ",,,"]) == []
    challenges = parse_challenges(['=oops, Basic realm="ok"'])
    assert challenges == [Challenge("basic", {"realm": "ok"})]
    assert parse_challenges(["Basic"]) == [Challenge("basic", {})]


def test_token_cache_expires_early_and_drops_only_the_refused_token() -> None:
    cache = TokenCache()
    key = TokenCache.key("https://t/token", "s", ["repository:a:pull"])
    assert key == TokenCache.key("https://t/token", "s", ("repository:a:pull",))
    cache.put(key, "t1", expires_in=300, now=1000.0)
    assert cache.get(key, 1289.0) == "t1"
    assert cache.get(key, 1290.0) is None  # 10 s margin
    cache.put(key, "t2", expires_in=20, now=0.0)
    assert cache.get(key, 17.9) == "t2"
    assert cache.get(key, 18.0) is None  # 10 % margin for short lifetimes
    cache.put(key, "t3", expires_in=300, now=0.0)
    cache.drop(key, "t2")
    assert cache.get(key, 1.0) == "t3"
    cache.drop(key, "t3")
    assert cache.get(key, 1.0) is None
    other = TokenCache.key("https://t/token", "s", ["repository:a:pull,push"])
    assert cache.get(other, 0.0) is None


def test_a_bounded_cache_drops_expired_tokens_then_the_oldest() -> None:
    cache = TokenCache(limit=2)
    keys = [TokenCache.key("https://t/token", "s", [f"repository:r{i}:pull"]) for i in range(4)]
    cache.put(keys[0], "expiring", 10, now=0.0)
    cache.put(keys[1], "old", 300, now=0.0)
    cache.put(keys[2], "new", 300, now=20.0)  # over the limit: the expired one goes
    assert len(cache) == 2
    assert cache.get(keys[1], now=21.0) == "old"
    cache.put(keys[3], "newest", 300, now=21.0)  # none expired: the oldest goes
    assert len(cache) == 2
    assert cache.get(keys[1], now=22.0) is None
    assert (cache.get(keys[2], now=22.0), cache.get(keys[3], now=22.0)) == ("new", "newest")
    # A token put again counts as new.
    cache.put(keys[2], "renewed", 300, now=23.0)
    cache.put(keys[0], "again", 300, now=23.0)
    assert cache.get(keys[2], now=24.0) == "renewed" and cache.get(keys[3], now=24.0) is None
