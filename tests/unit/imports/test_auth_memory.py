"""The process's memory of upstream authentication: credentials fingerprinted (never kept),
one token cache per set of credentials, learnt challenges per origin and repository, and
every part bounded."""

from __future__ import annotations

from transship.imports.auth_memory import LearntAuth, UpstreamAuthMemory
from transship.imports.challenge import Challenge
from transship.imports.ports import Credentials

ORIGIN = ("https", "registry.example", None)
BEARER = Challenge("bearer", {"realm": "https://auth.example/token", "service": "reg"})


def test_credentials_are_fingerprinted_apart_and_never_kept() -> None:
    memory = UpstreamAuthMemory()
    alice = memory.identity(Credentials("alice", "s3cr3t-pa55"))
    assert alice == memory.identity(Credentials("alice", "s3cr3t-pa55"))
    others = {
        memory.identity(None),
        memory.identity(Credentials("alice", "an0ther-pa55")),
        memory.identity(Credentials("bob", "s3cr3t-pa55")),
        memory.identity(Credentials(None, "s3cr3t-pa55")),  # an identity token
        # The separator keeps "ab" + "c" apart from "a" + "bc".
        memory.identity(Credentials("alices3cr3t", "-pa55")),
    }
    assert alice not in others and len(others) == 5
    assert "s3cr3t" not in alice and "alice" not in alice
    # Keyed per process: another memory gives the same secret another fingerprint.
    assert UpstreamAuthMemory().identity(Credentials("alice", "s3cr3t-pa55")) != alice


def test_each_set_of_credentials_has_a_token_cache_of_its_own() -> None:
    memory = UpstreamAuthMemory()
    key = ("https://auth.example/token", "reg", frozenset({"repository:a:pull"}))
    memory.tokens("one").put(key, "tok-1", 300, now=0.0)
    assert memory.tokens("one").get(key, now=1.0) == "tok-1"
    assert memory.tokens("two").get(key, now=1.0) is None


def test_learnt_challenges_are_per_credentials_origin_and_repository() -> None:
    memory = UpstreamAuthMemory()
    learnt = LearntAuth(BEARER, ("repository:a:pull",), basic=False)
    memory.learn("one", ORIGIN, "a", learnt)
    assert memory.learnt("one", ORIGIN, "a") == learnt
    assert memory.learnt("two", ORIGIN, "a") is None
    assert memory.learnt("one", ORIGIN, "b") is None
    assert memory.learnt("one", ("https", "registry.example", 5000), "a") is None


def test_the_least_recently_used_entries_go_first() -> None:
    memory = UpstreamAuthMemory(max_identities=2, max_learnt=2)
    first = memory.tokens("one")
    memory.tokens("two")
    assert memory.tokens("one") is first  # used: now the newest
    memory.tokens("three")  # drops "two"
    assert memory.tokens("one") is first
    learnt = LearntAuth(None, (), basic=True)
    memory.learn("one", ORIGIN, "a", learnt)
    memory.learn("one", ORIGIN, "b", learnt)
    assert memory.learnt("one", ORIGIN, "a") == learnt
    memory.learn("one", ORIGIN, "c", learnt)  # drops "b"
    assert memory.learnt("one", ORIGIN, "b") is None
    assert memory.learnt("one", ORIGIN, "a") == learnt
    assert memory.learnt("one", ORIGIN, "c") == learnt


def test_one_lock_per_credentials_and_token_while_it_is_held() -> None:
    memory = UpstreamAuthMemory()
    key = ("https://auth.example/token", "reg", frozenset({"repository:a:pull"}))
    held = memory.token_lock("one", key)
    assert memory.token_lock("one", key) is held
    assert memory.token_lock("two", key) is not held
    other = ("https://auth.example/token", "reg", frozenset({"repository:b:pull"}))
    assert memory.token_lock("one", other) is not held
