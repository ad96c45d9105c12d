"""`transship.identity.scopemaps`: scope-map actions, repository patterns, token grants."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transship.identity.scopemaps import (
    ALL_REPOSITORIES,
    DOCKER_ACTIONS,
    PERMISSIONS,
    SYSTEM_SCOPE_MAPS,
    InvalidScopeAction,
    ScopeAction,
    catalog_allowed,
    granted_docker_actions,
    granted_permissions,
    is_valid_pattern,
    parse_action,
    parse_actions,
    pattern_matches,
)

ALL_DOCKER = frozenset({"pull", "push", "delete", "metadata_read", "metadata_write"})

COMPONENT = st.from_regex(r"[a-z0-9]{1,3}(?:[._-][a-z0-9]{1,3}){0,2}", fullmatch=True)
REPOSITORY = st.lists(COMPONENT, min_size=1, max_size=4).map("/".join)
PATTERN = st.one_of(
    st.just("*"),
    REPOSITORY,
    REPOSITORY.map(lambda name: f"{name}/*"),
)
PERMISSION = st.sampled_from(PERMISSIONS)


def act(pattern: str, *permissions: str) -> tuple[ScopeAction, ...]:
    return tuple(ScopeAction(pattern, permission) for permission in permissions)


# -- parse_action ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern", "permission"),
    [
        ("repositories/*/content/read", "*", "content/read"),
        ("repositories/hello-world/content/write", "hello-world", "content/write"),
        ("repositories/samples/*/content/delete", "samples/*", "content/delete"),
        ("repositories/a/b/c/metadata/read", "a/b/c", "metadata/read"),
        ("repositories/a.b_c-d/e/*/metadata/write", "a.b_c-d/e/*", "metadata/write"),
        ("repositories/0/content/read", "0", "content/read"),
        ("repositories/content/content/read", "content", "content/read"),
        ("repositories/read/metadata/read", "read", "metadata/read"),
    ],
)
def test_parse_action(text: str, pattern: str, permission: str) -> None:
    action = parse_action(text)
    assert action == ScopeAction(pattern, permission)
    assert str(action) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repositories",
        "repositories/",
        "repositories/*",
        "repositories/*/content",
        "repositories/content/read",
        "repositories//content/read",
        "repositories/*/content/READ",
        "repositories/*/Content/read",
        "Repositories/*/content/read",
        "repository/*/content/read",
        "/repositories/*/content/read",
        "repositories/*/content/read/",
        "repositories/*/content/list",
        "repositories/*/metadata/delete",
        "repositories/*/content/*",
        "repositories/*/*/read",
        "repositories/*/*",
        "repositories/Hello/content/read",
        "repositories/a*/content/read",
        "repositories/a/*/b/content/read",
        "repositories/*/*/content/read",
        "repositories/*/x/content/read",
        "repositories/a/**/content/read",
        "repositories/a//b/content/read",
        "repositories/a/b//content/read",
        "repositories/-a/content/read",
        "repositories/a-/content/read",
        "repositories/a..b/content/read",
        "repositories/a__b/content/read",
        "repositories/ a/content/read",
        "repositories/a/content/read ",
        "repositories/*/content/read\n",
        "registry/catalog/*",
    ],
)
def test_parse_action_rejects(text: str) -> None:
    with pytest.raises(InvalidScopeAction) as caught:
        parse_action(text)
    assert repr(text) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@given(PATTERN, PERMISSION)
def test_parse_action_round_trips(pattern: str, permission: str) -> None:
    text = f"repositories/{pattern}/{permission}"
    action = parse_action(text)
    assert action == ScopeAction(pattern, permission)
    assert str(action) == text
    assert parse_action(str(action)) == action


@given(st.text(max_size=60))
def test_parse_action_only_raises_invalid_scope_action(text: str) -> None:
    try:
        action = parse_action(text)
    except InvalidScopeAction as error:
        assert repr(text) in str(error)
    else:
        assert str(action) == text


@given(st.text(st.sampled_from("repositos/*contenmadwlx-._"), max_size=40))
def test_parse_action_near_misses_round_trip_or_raise(text: str) -> None:
    try:
        action = parse_action(text)
    except InvalidScopeAction:
        return
    assert str(action) == text
    assert is_valid_pattern(action.pattern)
    assert action.permission in PERMISSIONS


def test_parse_actions() -> None:
    texts = ["repositories/a/content/read", "repositories/*/metadata/read"]
    assert parse_actions(texts) == (
        ScopeAction("a", "content/read"),
        ScopeAction("*", "metadata/read"),
    )
    assert parse_actions([]) == ()
    with pytest.raises(InvalidScopeAction, match="'repositories/B/content/read'"):
        parse_actions([*texts, "repositories/B/content/read"])


# -- ScopeAction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "permission", "message"),
    [
        ("", "content/read", "invalid repository pattern ''"),
        ("a/*/*", "content/read", "invalid repository pattern 'a/*/*'"),
        ("A", "content/read", "invalid repository pattern 'A'"),
        ("a", "content", "invalid scope-map permission 'content'"),
        ("a", "pull", "invalid scope-map permission 'pull'"),
        ("a", "", "invalid scope-map permission ''"),
    ],
)
def test_scope_action_validates(pattern: str, permission: str, message: str) -> None:
    with pytest.raises(InvalidScopeAction, match=message.replace("*", r"\*")):
        ScopeAction(pattern, permission)


def test_scope_action_is_frozen_and_hashable() -> None:
    action = ScopeAction("a", "content/read")
    with pytest.raises(FrozenInstanceError):
        action.pattern = "b"  # type: ignore[misc]
    assert len({action, ScopeAction("a", "content/read"), ScopeAction("a", "metadata/read")}) == 2


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("*", True),
        ("a", True),
        ("a/*", True),
        ("a/b/*", True),
        ("a.b-c_d/e0", True),
        ("", False),
        ("/*", False),
        ("*/*", False),
        ("a/", False),
        ("/a", False),
        ("a*", False),
        ("a/*/b", False),
        ("a/?", False),
        ("A/b", False),
        ("a--b", False),
    ],
)
def test_is_valid_pattern(pattern: str, valid: bool) -> None:
    assert is_valid_pattern(pattern) is valid


# -- pattern_matches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "repository", "expected"),
    [
        ("*", "a", True),
        ("*", "a/b/c", True),
        ("a", "a", True),
        ("a", "a/b", False),
        ("a", "ab", False),
        ("a/b", "a/b", True),
        ("a/b", "a", False),
        ("a/*", "a/x", True),
        ("a/*", "a/x/y", True),
        ("a/*", "a", False),
        ("a/*", "a/", False),
        ("a/*", "ab/x", False),
        ("a/*", "b/a/x", False),
        ("a/b/*", "a/b/c", True),
        ("a/b/*", "a/bc/d", False),
        ("a/b/*", "a/c", False),
        ("samples/*", "samples/hello-world", True),
        ("hello-world", "Hello-World", False),
        # Invalid patterns match nothing, not even themselves.
        ("a*", "a*", False),
        ("a*", "ab", False),
        ("", "", False),
        ("*/*", "a/b", False),
        ("A", "A", False),
    ],
)
def test_pattern_matches(pattern: str, repository: str, expected: bool) -> None:
    assert pattern_matches(pattern, repository) is expected


@given(REPOSITORY, REPOSITORY)
def test_pattern_matches_properties(prefix: str, rest: str) -> None:
    nested = f"{prefix}/{rest}"
    assert pattern_matches("*", prefix)
    assert pattern_matches(prefix, prefix)
    assert pattern_matches(f"{prefix}/*", nested)
    assert not pattern_matches(f"{prefix}/*", prefix)
    assert not pattern_matches(prefix, nested)
    assert pattern_matches(f"{nested}/*", f"{prefix}/*") is False
    # Gluing a character onto the prefix leaves the subtree.
    assert not pattern_matches(f"{prefix}/*", f"{prefix}x/{rest}")
    assert pattern_matches(rest, prefix) is (rest == prefix)


# -- granted actions ---------------------------------------------------------------------------


def test_docker_actions() -> None:
    assert dict(DOCKER_ACTIONS) == {
        "pull": "content/read",
        "push": "content/write",
        "delete": "content/delete",
        "metadata_read": "metadata/read",
        "metadata_write": "metadata/write",
    }
    assert set(DOCKER_ACTIONS.values()) == set(PERMISSIONS)
    with pytest.raises(TypeError):
        DOCKER_ACTIONS["pull"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("permission", "expected"),
    [
        ("content/read", {"pull", "metadata_read"}),
        ("content/write", {"push"}),
        ("content/delete", {"delete"}),
        ("metadata/read", {"metadata_read"}),
        ("metadata/write", {"metadata_write"}),
    ],
)
@pytest.mark.parametrize("pattern", ["*", "team/*", "team/app"])
def test_granted_docker_actions_each_permission(
    permission: str, expected: set[str], pattern: str
) -> None:
    actions = act(pattern, permission)
    assert granted_docker_actions(actions, "team/app") == expected
    assert granted_permissions(actions, "team/app") == {permission}
    assert granted_docker_actions(actions, "other/app") == (
        expected if pattern == "*" else frozenset()
    )


def test_granted_docker_actions_combine_matching_actions_only() -> None:
    actions = (
        *act("team/*", "content/read"),
        *act("team/app", "content/write"),
        *act("team/app/sub", "content/delete"),
        *act("other", "metadata/write"),
    )
    assert granted_docker_actions(actions, "team/app") == {"pull", "metadata_read", "push"}
    assert granted_docker_actions(actions, "team/app/sub") == {"pull", "metadata_read", "delete"}
    assert granted_docker_actions(actions, "team") == frozenset()
    assert granted_docker_actions(actions, "other") == {"metadata_write"}
    assert granted_docker_actions(actions, "unrelated") == frozenset()
    assert granted_docker_actions((), "team/app") == frozenset()


def test_push_does_not_imply_pull() -> None:
    assert granted_docker_actions(act("a", "content/write"), "a") == {"push"}
    assert granted_docker_actions(act("a", "metadata/write"), "a") == {"metadata_write"}
    assert granted_docker_actions(act("a", "content/delete"), "a") == {"delete"}


def test_granted_docker_actions_accepts_a_one_shot_iterable() -> None:
    actions = iter(act("*", "content/read", "content/write"))
    assert granted_docker_actions(actions, "a") == {"pull", "push", "metadata_read"}


@given(st.lists(st.builds(ScopeAction, PATTERN, PERMISSION), max_size=8), REPOSITORY)
def test_granted_docker_actions_agree_with_pattern_matches(
    actions: list[ScopeAction], repository: str
) -> None:
    granted = granted_docker_actions(actions, repository)
    matching = {a.permission for a in actions if pattern_matches(a.pattern, repository)}
    expected = {name for name, permission in DOCKER_ACTIONS.items() if permission in matching}
    if "content/read" in matching:
        expected.add("metadata_read")
    assert granted == expected
    assert granted <= ALL_DOCKER


# -- catalog -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (act("*", "metadata/read"), True),
        (act("*", "content/read"), True),
        ((*act("a", "content/read"), *act("*", "metadata/read")), True),
        (act("*", "content/write", "content/delete", "metadata/write"), False),
        (act("a/*", "content/read", "metadata/read"), False),
        (act("a", "content/read", "metadata/read"), False),
        ((), False),
    ],
)
def test_catalog_allowed(actions: tuple[ScopeAction, ...], expected: bool) -> None:
    assert catalog_allowed(actions) is expected


# -- system scope maps -------------------------------------------------------------------------


def test_system_scope_maps() -> None:
    texts = {name: [str(a) for a in actions] for name, actions in SYSTEM_SCOPE_MAPS.items()}
    assert texts == {
        "_repositories_admin": [
            "repositories/*/content/read",
            "repositories/*/content/write",
            "repositories/*/content/delete",
            "repositories/*/metadata/read",
            "repositories/*/metadata/write",
        ],
        "_repositories_pull": ["repositories/*/content/read"],
        "_repositories_pull_metadata_read": [
            "repositories/*/content/read",
            "repositories/*/metadata/read",
        ],
        "_repositories_push": ["repositories/*/content/read", "repositories/*/content/write"],
        "_repositories_push_metadata_write": [
            "repositories/*/content/read",
            "repositories/*/content/write",
            "repositories/*/metadata/read",
            "repositories/*/metadata/write",
        ],
    }
    with pytest.raises(TypeError):
        SYSTEM_SCOPE_MAPS["_mine"] = ()  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_repositories_admin", ALL_DOCKER),
        ("_repositories_pull", {"pull", "metadata_read"}),
        ("_repositories_pull_metadata_read", {"pull", "metadata_read"}),
        ("_repositories_push", {"pull", "push", "metadata_read"}),
        ("_repositories_push_metadata_write", {"pull", "push", "metadata_read", "metadata_write"}),
    ],
)
def test_system_scope_map_grants(name: str, expected: set[str]) -> None:
    actions = SYSTEM_SCOPE_MAPS[name]
    for repository in ("a", "a/b/c"):
        assert granted_docker_actions(actions, repository) == expected
    assert catalog_allowed(actions)
    assert all(action.pattern == ALL_REPOSITORIES for action in actions)
