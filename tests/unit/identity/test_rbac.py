"""`transship.identity.rbac`: role definitions, pattern matching, scopes and evaluation."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transship.identity.rbac import (
    ACR_DELETE,
    ACR_IMAGE_SIGNER,
    ACR_PULL,
    ACR_PUSH,
    ALL_ACTIONS,
    ALL_DATA_ACTIONS,
    BUILTIN_ROLES,
    CONTRIBUTOR,
    MAX_ACTION_LENGTH,
    OWNER,
    READER,
    Actions,
    Assignment,
    Permission,
    RoleDefinition,
    action_matches,
    builtin_role,
    is_allowed,
    is_assignable,
    permits,
    registry_data_permissions,
    role_definition_id,
    scope_covers,
    validate_role_permissions,
)

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
RG = f"{SUB}/resourceGroups/rg-1"
REGISTRY = f"{RG}/providers/Microsoft.ContainerRegistry/registries/reg1"
# Neighbours chosen so that a string-prefix comparison (instead of a segment-wise one)
# would wrongly cover REGISTRY from them.
SIBLING_REGISTRY = f"{RG}/providers/Microsoft.ContainerRegistry/registries/reg10"
OTHER_RG = f"{SUB}/resourceGroups/rg-10"
OTHER_SUB = "/subscriptions/00000000-0000-0000-0000-0000000000010"
UNRELATED_SUB = "/subscriptions/ffffffff-0000-0000-0000-000000000000"

CUSTOM_GUID = "11111111-2222-3333-4444-555555555555"


# -- the matrix --------------------------------------------------------------------------------

ROLE_COLUMNS = (
    "Owner",
    "Contributor",
    "Reader",
    "AcrPull",
    "AcrPush",
    "AcrDelete",
    "AcrImageSigner",
)

# Written by hand from the role definitions: Y = allowed, . = denied, at the registry.
CONTROL_TABLE = """
Microsoft.ContainerRegistry/registries/read                          Y Y Y . . . .
Microsoft.ContainerRegistry/registries/write                         Y Y . . . . .
Microsoft.ContainerRegistry/registries/delete                        Y Y . . . . .
Microsoft.ContainerRegistry/registries/importImage/action            Y Y . . . . .
Microsoft.ContainerRegistry/registries/listCredentials/action        Y Y . . . . .
Microsoft.ContainerRegistry/registries/regenerateCredential/action   Y Y . . . . .
Microsoft.ContainerRegistry/registries/pull/read                     Y Y Y Y Y . .
Microsoft.ContainerRegistry/registries/push/write                    Y Y . . Y . .
Microsoft.ContainerRegistry/registries/artifacts/delete              Y Y . . . Y .
Microsoft.ContainerRegistry/registries/sign/write                    Y Y . . . . Y
Microsoft.ContainerRegistry/registries/tokens/read                   Y Y Y . . . .
Microsoft.ContainerRegistry/registries/tokens/write                  Y Y . . . . .
Microsoft.ContainerRegistry/registries/tokens/delete                 Y Y . . . . .
Microsoft.ContainerRegistry/registries/scopeMaps/read                Y Y Y . . . .
Microsoft.ContainerRegistry/registries/scopeMaps/write               Y Y . . . . .
Microsoft.ContainerRegistry/registries/scopeMaps/delete              Y Y . . . . .
Microsoft.ContainerRegistry/registries/webhooks/read                 Y Y Y . . . .
Microsoft.ContainerRegistry/registries/webhooks/write                Y Y . . . . .
Microsoft.ContainerRegistry/registries/webhooks/delete               Y Y . . . . .
Microsoft.ContainerRegistry/registries/webhooks/ping/action          Y Y . . . . .
Microsoft.ContainerRegistry/registries/webhooks/getCallbackConfig/action Y Y . . . . .
Microsoft.ContainerRegistry/registries/webhooks/listEvents/action    Y Y . . . . .
Microsoft.ContainerRegistry/registries/cacheRules/read               Y Y Y . . . .
Microsoft.ContainerRegistry/registries/cacheRules/write              Y Y . . . . .
Microsoft.ContainerRegistry/registries/cacheRules/delete             Y Y . . . . .
Microsoft.ContainerRegistry/registries/credentialSets/read           Y Y Y . . . .
Microsoft.ContainerRegistry/registries/credentialSets/write          Y Y . . . . .
Microsoft.ContainerRegistry/registries/credentialSets/delete         Y Y . . . . .
Microsoft.Authorization/roleAssignments/read                         Y Y Y . . . .
Microsoft.Authorization/roleAssignments/write                        Y . . . . . .
Microsoft.Authorization/roleAssignments/delete                       Y . . . . . .
Microsoft.Authorization/roleDefinitions/read                         Y Y Y . . . .
Microsoft.Authorization/roleDefinitions/write                        Y . . . . . .
Microsoft.Authorization/roleDefinitions/delete                       Y . . . . . .
Microsoft.Resources/subscriptions/read                               Y Y Y . . . .
Microsoft.Resources/subscriptions/resourceGroups/read                Y Y Y . . . .
Microsoft.Resources/subscriptions/resourceGroups/write               Y Y . . . . .
Microsoft.Resources/subscriptions/resourceGroups/delete              Y Y . . . . .
Microsoft.Resources/subscriptions/resources/read                     Y Y Y . . . .
"""

# No built-in role here holds data actions: every data action is denied to every role.
DATA_TABLE = """
Microsoft.ContainerRegistry/registries/repositories/content/read     . . . . . . .
Microsoft.ContainerRegistry/registries/repositories/content/write    . . . . . . .
Microsoft.ContainerRegistry/registries/repositories/content/delete   . . . . . . .
Microsoft.ContainerRegistry/registries/repositories/metadata/read    . . . . . . .
Microsoft.ContainerRegistry/registries/repositories/metadata/write   . . . . . . .
"""


def parse_table(table: str) -> dict[tuple[str, str], bool]:
    expected: dict[tuple[str, str], bool] = {}
    for line in table.strip().splitlines():
        action, *marks = line.split()
        assert len(marks) == len(ROLE_COLUMNS), line
        for role, mark in zip(ROLE_COLUMNS, marks, strict=True):
            assert mark in ("Y", "."), line
            expected[(role, action)] = mark == "Y"
    return expected


CONTROL_EXPECTED = parse_table(CONTROL_TABLE)
DATA_EXPECTED = parse_table(DATA_TABLE)
ROLES_BY_NAME = {role.name: role for role in BUILTIN_ROLES}
ASSIGNMENT_SCOPES = {"subscription": SUB, "resource group": RG, "registry": REGISTRY}
NON_COVERING_SCOPES = {
    "sibling registry": SIBLING_REGISTRY,
    "other resource group": OTHER_RG,
    "other subscription": OTHER_SUB,
    "unrelated subscription": UNRELATED_SUB,
}
MATRIX = [
    (role, action, data)
    for role in ROLE_COLUMNS
    for action, data in [(a, False) for a in ALL_ACTIONS] + [(a, True) for a in ALL_DATA_ACTIONS]
]


def test_tables_list_exactly_the_checked_actions() -> None:
    assert [action for (role, action) in CONTROL_EXPECTED if role == "Owner"] == list(ALL_ACTIONS)
    assert [action for (role, action) in DATA_EXPECTED if role == "Owner"] == list(ALL_DATA_ACTIONS)
    assert tuple(ROLES_BY_NAME) == ROLE_COLUMNS


@pytest.mark.parametrize("where", list(ASSIGNMENT_SCOPES))
@pytest.mark.parametrize(("role_name", "action", "data"), MATRIX)
def test_matrix_assignment_covering_the_registry(
    role_name: str, action: str, data: bool, where: str
) -> None:
    expected = (DATA_EXPECTED if data else CONTROL_EXPECTED)[(role_name, action)]
    assignment = Assignment(ASSIGNMENT_SCOPES[where], ROLES_BY_NAME[role_name])
    assert is_allowed([assignment], action, REGISTRY, data=data) is expected
    # The same answer for a resource further down, and from an upper-cased scope.
    assert is_allowed([assignment], action, f"{REGISTRY}/tokens/t1", data=data) is expected
    upper = Assignment(ASSIGNMENT_SCOPES[where].upper(), ROLES_BY_NAME[role_name])
    assert is_allowed([upper], action, REGISTRY, data=data) is expected
    assert permits(ROLES_BY_NAME[role_name], action, data=data) is expected


@pytest.mark.parametrize("where", list(NON_COVERING_SCOPES))
@pytest.mark.parametrize(("role_name", "action", "data"), MATRIX)
def test_matrix_assignment_elsewhere_grants_nothing(
    role_name: str, action: str, data: bool, where: str
) -> None:
    assignment = Assignment(NON_COVERING_SCOPES[where], ROLES_BY_NAME[role_name])
    assert not is_allowed([assignment], action, REGISTRY, data=data)


@pytest.mark.parametrize(("role_name", "action", "data"), MATRIX)
def test_matrix_assignment_does_not_reach_upwards(role_name: str, action: str, data: bool) -> None:
    at_registry = Assignment(REGISTRY, ROLES_BY_NAME[role_name])
    at_rg = Assignment(RG, ROLES_BY_NAME[role_name])
    assert not is_allowed([at_registry], action, RG, data=data)
    assert not is_allowed([at_registry], action, SUB, data=data)
    assert not is_allowed([at_rg], action, SUB, data=data)


REGISTRY_PERMISSIONS = {
    "Owner": {"pull", "push", "delete", "metadata_read", "metadata_write"},
    "Contributor": {"pull", "push", "delete", "metadata_read", "metadata_write"},
    "Reader": {"pull", "metadata_read"},
    "AcrPull": {"pull", "metadata_read"},
    "AcrPush": {"pull", "push", "metadata_read", "metadata_write"},
    "AcrDelete": {"delete"},
    "AcrImageSigner": set(),
}


@pytest.mark.parametrize("where", list(ASSIGNMENT_SCOPES))
@pytest.mark.parametrize("role_name", ROLE_COLUMNS)
def test_registry_data_permissions_of_builtin_roles(role_name: str, where: str) -> None:
    assignment = Assignment(ASSIGNMENT_SCOPES[where], ROLES_BY_NAME[role_name])
    assert registry_data_permissions([assignment], REGISTRY) == REGISTRY_PERMISSIONS[role_name]


@pytest.mark.parametrize("where", list(NON_COVERING_SCOPES))
@pytest.mark.parametrize("role_name", ROLE_COLUMNS)
def test_registry_data_permissions_elsewhere_are_empty(role_name: str, where: str) -> None:
    assignment = Assignment(NON_COVERING_SCOPES[where], ROLES_BY_NAME[role_name])
    assert registry_data_permissions([assignment], REGISTRY) == frozenset()


# -- custom roles ------------------------------------------------------------------------------


def custom(*permissions: Permission, scopes: tuple[str, ...] = ("/",)) -> RoleDefinition:
    return RoleDefinition(
        id=CUSTOM_GUID,
        name="Custom",
        description="a custom role",
        permissions=permissions,
        assignable_scopes=scopes,
    )


IMPORTER = custom(Permission(actions=(Actions.IMPORT_IMAGE,)))


@pytest.mark.parametrize("where", list(ASSIGNMENT_SCOPES))
@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_import_only_custom_role(action: str, where: str) -> None:
    assignment = Assignment(ASSIGNMENT_SCOPES[where], IMPORTER)
    assert is_allowed([assignment], action, REGISTRY) is (action == Actions.IMPORT_IMAGE)
    assert not is_allowed([Assignment(SIBLING_REGISTRY, IMPORTER)], action, REGISTRY)


def test_import_only_custom_role_has_no_data_permissions() -> None:
    assignment = Assignment(REGISTRY, IMPORTER)
    assert registry_data_permissions([assignment], REGISTRY) == frozenset()
    for action in ALL_DATA_ACTIONS:
        assert not is_allowed([assignment], action, REGISTRY, data=True)


@pytest.mark.parametrize(
    ("data_actions", "expected"),
    [
        ((Actions.REPOSITORY_CONTENT_READ,), {"pull", "metadata_read"}),
        ((Actions.REPOSITORY_CONTENT_WRITE,), {"push", "metadata_write"}),
        ((Actions.REPOSITORY_CONTENT_DELETE,), {"delete"}),
        ((Actions.REPOSITORY_METADATA_READ,), {"metadata_read"}),
        ((Actions.REPOSITORY_METADATA_WRITE,), {"metadata_write"}),
        (
            ("Microsoft.ContainerRegistry/registries/repositories/*",),
            {"pull", "push", "delete", "metadata_read", "metadata_write"},
        ),
        (
            ("Microsoft.ContainerRegistry/registries/repositories/*/read",),
            {"pull", "metadata_read"},
        ),
        ((), set()),
    ],
)
def test_registry_data_permissions_from_data_actions(
    data_actions: tuple[str, ...], expected: set[str]
) -> None:
    role = custom(Permission(data_actions=data_actions))
    assert registry_data_permissions([Assignment(RG, role)], REGISTRY) == expected


def test_data_actions_are_not_control_actions_and_vice_versa() -> None:
    # A data action in `actions` grants nothing on the data plane, and the reverse.
    in_actions = custom(Permission(actions=(Actions.REPOSITORY_CONTENT_READ,)))
    assert not permits(in_actions, Actions.REPOSITORY_CONTENT_READ, data=True)
    in_data = custom(Permission(data_actions=(Actions.PULL,)))
    assert not permits(in_data, Actions.PULL)
    assert registry_data_permissions([Assignment("/", in_data)], REGISTRY) == frozenset()


def test_not_data_actions_subtract() -> None:
    role = custom(
        Permission(
            data_actions=("Microsoft.ContainerRegistry/registries/repositories/*",),
            not_data_actions=("*/delete",),
        )
    )
    assert registry_data_permissions([Assignment("/", role)], REGISTRY) == {
        "pull",
        "push",
        "metadata_read",
        "metadata_write",
    }


def test_not_actions_only_subtract_within_their_block() -> None:
    role = custom(
        Permission(actions=("*",), not_actions=(Actions.PUSH,)),
        Permission(actions=(Actions.PUSH,)),
    )
    assert permits(role, Actions.PUSH)
    only_block = custom(Permission(actions=("*",), not_actions=(Actions.PUSH,)))
    assert not permits(only_block, Actions.PUSH)
    assert permits(only_block, Actions.PULL)


def test_permissions_union_over_assignments() -> None:
    assignments = [
        Assignment(REGISTRY, ACR_DELETE),
        Assignment(SIBLING_REGISTRY, ACR_PUSH),
        Assignment(SUB, ACR_PULL),
    ]
    assert registry_data_permissions(assignments, REGISTRY) == {"pull", "delete", "metadata_read"}
    assert registry_data_permissions(assignments, SIBLING_REGISTRY) == {
        "pull",
        "push",
        "metadata_read",
        "metadata_write",
    }
    assert is_allowed(assignments, Actions.ARTIFACTS_DELETE, REGISTRY)
    assert not is_allowed(assignments, Actions.ARTIFACTS_DELETE, SIBLING_REGISTRY)


def test_no_assignments_allow_nothing() -> None:
    assert not is_allowed([], Actions.PULL, REGISTRY)
    assert registry_data_permissions([], REGISTRY) == frozenset()
    assert not permits(custom(), Actions.PULL)


def test_assignments_may_be_a_one_shot_iterable() -> None:
    assignments = iter([Assignment(SUB, ACR_PUSH)])
    assert registry_data_permissions(assignments, REGISTRY) == REGISTRY_PERMISSIONS["AcrPush"]


def test_root_assignment_covers_everything() -> None:
    assert is_allowed([Assignment("/", READER)], Actions.SUBSCRIPTIONS_READ, OTHER_SUB)
    assert is_allowed([Assignment("/", OWNER)], Actions.REGISTRIES_DELETE, SIBLING_REGISTRY)


# -- built-in roles ----------------------------------------------------------------------------


def test_builtin_roles_carry_the_azure_ids_and_permissions() -> None:
    expected = {
        "Owner": ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", Permission(actions=("*",))),
        "Contributor": (
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            Permission(
                actions=("*",),
                not_actions=(
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/elevateAccess/Action",
                ),
            ),
        ),
        "Reader": ("acdd72a7-3385-48ef-bd42-f606fba81ae7", Permission(actions=("*/read",))),
        "AcrPull": (
            "7f951dda-4ed3-4680-a7ca-43fe172d538d",
            Permission(actions=("Microsoft.ContainerRegistry/registries/pull/read",)),
        ),
        "AcrPush": (
            "8311e382-0749-4cb8-b61a-304f252e45ec",
            Permission(
                actions=(
                    "Microsoft.ContainerRegistry/registries/pull/read",
                    "Microsoft.ContainerRegistry/registries/push/write",
                )
            ),
        ),
        "AcrDelete": (
            "c2f4ef07-c644-48eb-af81-4b1b4947fb11",
            Permission(actions=("Microsoft.ContainerRegistry/registries/artifacts/delete",)),
        ),
        "AcrImageSigner": (
            "6cef56e8-d556-48e5-a04f-b8e64114680f",
            Permission(actions=("Microsoft.ContainerRegistry/registries/sign/write",)),
        ),
    }
    assert {role.name: (role.id, *role.permissions) for role in BUILTIN_ROLES} == expected
    for role in BUILTIN_ROLES:
        assert role.builtin
        assert role.assignable_scopes == ("/",)
        assert role.description
        validate_role_permissions(role.permissions)
    assert (OWNER, CONTRIBUTOR, READER, ACR_PULL, ACR_PUSH, ACR_DELETE, ACR_IMAGE_SIGNER) == (
        BUILTIN_ROLES
    )


@pytest.mark.parametrize("role", BUILTIN_ROLES, ids=lambda role: role.name)
def test_builtin_role_lookup(role: RoleDefinition) -> None:
    for key in (
        role.name,
        role.name.lower(),
        role.name.upper(),
        role.id,
        role.id.upper(),
        role_definition_id(role.id),
        role_definition_id(role.id, SUB),
        role_definition_id(role.id, REGISTRY).upper(),
    ):
        assert builtin_role(key) is role, key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "Owners",
        "owner ",
        "Acr Pull",
        CUSTOM_GUID,
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb63",
        role_definition_id(CUSTOM_GUID),
        "/providers/Microsoft.Authorization/roleDefinitions/Owner/x",
        "/providers/Microsoft.Authorization/roleDefinitions/",
        "subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/"
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "/providers/Microsoft.Authorization/roleAssignments/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    ],
)
def test_builtin_role_lookup_misses(key: str) -> None:
    assert builtin_role(key) is None


def test_builtin_role_to_json() -> None:
    assert CONTRIBUTOR.to_json() == {
        "id": (
            "/providers/Microsoft.Authorization/roleDefinitions/"
            "b24988ac-6180-42a0-ab88-20f7382dd24c"
        ),
        "name": "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": "Contributor",
            "description": CONTRIBUTOR.description,
            "type": "BuiltInRole",
            "permissions": [
                {
                    "actions": ["*"],
                    "notActions": [
                        "Microsoft.Authorization/*/Delete",
                        "Microsoft.Authorization/*/Write",
                        "Microsoft.Authorization/elevateAccess/Action",
                    ],
                    "dataActions": [],
                    "notDataActions": [],
                }
            ],
            "assignableScopes": ["/"],
        },
    }


@pytest.mark.parametrize(
    ("scopes", "expected_id"),
    [
        ((SUB,), f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"),
        ((f"{RG}/", SUB), f"{RG}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"),
        (("/",), f"/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"),
        ((), f"/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"),
    ],
)
def test_custom_role_to_json(scopes: tuple[str, ...], expected_id: str) -> None:
    role = RoleDefinition(
        id=CUSTOM_GUID,
        name="Importer",
        description="imports images",
        permissions=(Permission(actions=(Actions.IMPORT_IMAGE,), data_actions=("a/b",)),),
        assignable_scopes=scopes,
    )
    body = role.to_json()
    assert body["id"] == expected_id == role.resource_id
    assert body["name"] == CUSTOM_GUID
    assert body["type"] == "Microsoft.Authorization/roleDefinitions"
    assert body["properties"] == {
        "roleName": "Importer",
        "description": "imports images",
        "type": "CustomRole",
        "permissions": [
            {
                "actions": [Actions.IMPORT_IMAGE],
                "notActions": [],
                "dataActions": ["a/b"],
                "notDataActions": [],
            }
        ],
        "assignableScopes": list(scopes),
    }


def test_to_json_is_a_fresh_copy() -> None:
    body = OWNER.to_json()
    body["properties"]["permissions"][0]["actions"].append("x")
    body["properties"]["assignableScopes"].append("x")
    assert OWNER.to_json()["properties"]["permissions"][0]["actions"] == ["*"]
    assert OWNER.to_json()["properties"]["assignableScopes"] == ["/"]


@pytest.mark.parametrize(
    "guid", ["", "owner", CUSTOM_GUID + "0", CUSTOM_GUID[:-1], "{" + CUSTOM_GUID + "}", "g" * 36]
)
def test_role_definition_id_must_be_a_guid(guid: str) -> None:
    with pytest.raises(ValueError, match="not a GUID"):
        RoleDefinition(id=guid, name="x", description="", permissions=())


def test_role_definition_is_frozen_and_hashable() -> None:
    with pytest.raises(FrozenInstanceError):
        OWNER.name = "x"  # type: ignore[misc]
    assert len({OWNER, CONTRIBUTOR, OWNER}) == 2
    assert custom(Permission(actions=(Actions.IMPORT_IMAGE,))) == IMPORTER


def test_role_definition_id() -> None:
    assert role_definition_id(CUSTOM_GUID) == (
        f"/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"
    )
    assert role_definition_id(CUSTOM_GUID, "/") == role_definition_id(CUSTOM_GUID)
    assert role_definition_id(CUSTOM_GUID, SUB + "/") == (
        f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_GUID}"
    )


def test_is_assignable() -> None:
    role = custom(Permission(actions=("*",)), scopes=(RG, OTHER_SUB))
    assert is_assignable(role, RG)
    assert is_assignable(role, REGISTRY)
    assert is_assignable(role, f"{OTHER_SUB}/resourceGroups/x")
    assert not is_assignable(role, SUB)
    assert not is_assignable(role, OTHER_RG)
    assert not is_assignable(custom(scopes=()), "/")
    assert all(is_assignable(role, SIBLING_REGISTRY) for role in BUILTIN_ROLES)


# -- Permission JSON ---------------------------------------------------------------------------


def test_permission_json_round_trip() -> None:
    permission = Permission(("a",), ("b",), ("c", "d"), ("e",))
    assert permission.to_json() == {
        "actions": ["a"],
        "notActions": ["b"],
        "dataActions": ["c", "d"],
        "notDataActions": ["e"],
    }
    assert Permission.from_json(permission.to_json()) == permission


def test_permission_from_json_defaults_and_ignores_unknown_keys() -> None:
    assert Permission.from_json({}) == Permission()
    assert Permission.from_json({"actions": None, "condition": "x"}) == Permission()
    assert Permission.from_json({"notDataActions": ["x"]}) == Permission(not_data_actions=("x",))


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"actions": "*"}, "actions"),
        ({"notActions": [1]}, "notActions"),
        ({"dataActions": {"a": 1}}, "dataActions"),
        ({"notDataActions": ["a", None]}, "notDataActions"),
    ],
)
def test_permission_from_json_rejects_wrong_types(body: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=rf"permissions\.{key} must be a list of strings"):
        Permission.from_json(body)


# -- action_matches ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action"),
    [
        ("*", "Microsoft.ContainerRegistry/registries/pull/read"),
        ("*", ""),
        ("*/read", "Microsoft.ContainerRegistry/registries/pull/read"),
        ("*/read", "Microsoft.Resources/subscriptions/read"),
        ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"),
        ("Microsoft.Authorization/*/Delete", "microsoft.authorization/roledefinitions/DELETE"),
        ("Microsoft.ContainerRegistry/*", "Microsoft.ContainerRegistry/registries/read"),
        ("microsoft.containerregistry/registries/PULL/read", Actions.PULL),
        ("Microsoft.ContainerRegistry/registries/*/read", Actions.PULL),
        (
            "Microsoft.ContainerRegistry/registries/*/read",
            "Microsoft.ContainerRegistry/registries//read",
        ),
        ("Microsoft.*Registry/registries/p*l*/read", Actions.PULL),
        ("**", "x"),
        ("a*b*c", "abc"),
        ("a*b*c", "aXbYbZc"),
        ("", ""),
    ],
)
def test_action_matches(pattern: str, action: str) -> None:
    assert action_matches(pattern, action)


@pytest.mark.parametrize(
    ("pattern", "action"),
    [
        ("*/read", "Microsoft.ContainerRegistry/registries/push/write"),
        ("*/read", "Microsoft.ContainerRegistry/registries/read/action"),
        ("Microsoft.Authorization/*/Write", "Microsoft.ContainerRegistry/registries/write"),
        ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/write"),
        (
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/pull/reads",
        ),
        (
            "Microsoft.ContainerRegistry/registries/pull/read",
            "xMicrosoft.ContainerRegistry/registries/pull/read",
        ),
        ("Microsoft.ContainerRegistry/registries/p?ll/read", Actions.PULL),
        ("Microsoft.ContainerRegistry/registries/[p]ull/read", Actions.PULL),
        ("Microsoft.ContainerRegistry.registries.pull.read", Actions.PULL),
        ("a*b*c", "abcd"),
        ("", "a"),
        ("a", ""),
    ],
)
def test_action_does_not_match(pattern: str, action: str) -> None:
    assert not action_matches(pattern, action)


def reference_match(pattern: str, action: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("*"))
    return re.fullmatch(regex, action.lower(), re.DOTALL) is not None


ACTION_ALPHABET = st.sampled_from("ab/*.A")


@given(
    st.text(ACTION_ALPHABET, max_size=12),
    st.text(ACTION_ALPHABET.filter(lambda c: c != "*"), max_size=12),
)
def test_action_matches_agrees_with_a_regex(pattern: str, action: str) -> None:
    assert action_matches(pattern, action) is reference_match(pattern, action)


@given(st.text(max_size=40))
def test_action_matches_itself_and_star(action: str) -> None:
    assert action_matches(action, action)
    assert action_matches("*", action)
    literal = action.replace("*", "")
    assert action_matches(literal.upper(), literal.lower()) is (
        literal.upper().lower() == literal.lower()
    )


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_action_matches_star_in_the_middle(prefix: str, middle: str, suffix: str) -> None:
    prefix, suffix = prefix.replace("*", ""), suffix.replace("*", "")
    assert action_matches(f"{prefix}*{suffix}", f"{prefix}{middle}{suffix}")


def test_action_matches_is_not_exponential() -> None:
    assert not action_matches("*a" * 40 + "b", "a" * 4000)


# -- scope_covers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignment_scope", "resource_scope"),
    [
        ("/", "/"),
        ("/", SUB),
        ("/", REGISTRY),
        (SUB, SUB),
        (SUB, RG),
        (SUB, REGISTRY),
        (RG, REGISTRY),
        (REGISTRY, REGISTRY),
        (REGISTRY + "/", REGISTRY),
        (REGISTRY, REGISTRY + "/"),
        (SUB.upper(), REGISTRY.lower()),
        ("/subscriptions/a", "/subscriptions/a/resourceGroups/rg/providers/x/y/z"),
        ("/subscriptions/a", "/SUBSCRIPTIONS/A"),
        ("//", "/subscriptions/a"),
    ],
)
def test_scope_covers(assignment_scope: str, resource_scope: str) -> None:
    assert scope_covers(assignment_scope, resource_scope)


@pytest.mark.parametrize(
    ("assignment_scope", "resource_scope"),
    [
        ("/subscriptions/a", "/subscriptions/ab"),
        ("/subscriptions/a", "/subscriptions/ab/resourceGroups/rg"),
        ("/subscriptions/ab", "/subscriptions/a"),
        (SUB, "/"),
        (RG, SUB),
        (REGISTRY, RG),
        (SIBLING_REGISTRY, REGISTRY),
        (REGISTRY, SIBLING_REGISTRY),
        (OTHER_RG, REGISTRY),
        (OTHER_SUB, REGISTRY),
        ("", REGISTRY),
        ("subscriptions/a", "/subscriptions/a"),
        ("/subscriptions/a", "subscriptions/a"),
        ("/", ""),
    ],
)
def test_scope_does_not_cover(assignment_scope: str, resource_scope: str) -> None:
    assert not scope_covers(assignment_scope, resource_scope)


SEGMENT = st.text(st.sampled_from("aAbB-1."), min_size=1, max_size=4)


@given(st.lists(SEGMENT, max_size=5), st.lists(SEGMENT, max_size=5))
def test_scope_covers_is_a_segment_prefix(covering: list[str], covered: list[str]) -> None:
    expected = [s.lower() for s in covered[: len(covering)]] == [s.lower() for s in covering]
    assert scope_covers("/" + "/".join(covering), "/" + "/".join(covered)) is expected
    assert scope_covers("/" + "/".join(covering) + "/", "/" + "/".join(covered)) is expected
    assert scope_covers("/" + "/".join(covering), "/" + "/".join(covering + covered))


# -- validate_role_permissions -----------------------------------------------------------------


def test_validate_accepts_ordinary_entries() -> None:
    validate_role_permissions(
        [
            Permission(actions=ALL_ACTIONS, not_actions=("Microsoft.Authorization/*/Write",)),
            Permission(data_actions=ALL_DATA_ACTIONS, not_data_actions=("*/delete",)),
            Permission(actions=("x" * MAX_ACTION_LENGTH, "ünïcode/*")),
        ]
    )
    validate_role_permissions([])
    validate_role_permissions([Permission()])


@pytest.mark.parametrize(
    ("permissions", "where", "problem"),
    [
        ([Permission(actions=("",))], "permissions[0].actions[0] ''", "empty or blank"),
        ([Permission(actions=("a", "  "))], "permissions[0].actions[1] '  '", "empty or blank"),
        (
            [Permission(), Permission(not_actions=("a\tb",))],
            "permissions[1].notActions[0] 'a\\tb'",
            "control character",
        ),
        (
            [Permission(data_actions=("a\x00",))],
            "permissions[0].dataActions[0]",
            "control character",
        ),
        ([Permission(not_data_actions=("a\x7f",))], "permissions[0].notDataActions[0]", "control"),
        ([Permission(actions=("a\x85",))], "permissions[0].actions[0]", "control character"),
        ([Permission(actions=("a\n",))], "permissions[0].actions[0]", "control character"),
        (
            [Permission(actions=("x" * (MAX_ACTION_LENGTH + 1),))],
            "permissions[0].actions[0] '" + "x" * 60 + "…'",
            "longer than 256 characters",
        ),
    ],
)
def test_validate_rejects(permissions: list[Permission], where: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_role_permissions(permissions)
    assert where in str(caught.value)
    assert problem in str(caught.value)


@given(st.text(min_size=1, max_size=30), st.characters(categories=["Cc"]), st.integers(0, 30))
def test_validate_rejects_any_control_character(text: str, control: str, at: int) -> None:
    entry = text[:at] + control + text[at:]
    with pytest.raises(ValueError, match=r"permissions\[0\]\.actions\[0\]"):
        validate_role_permissions([Permission(actions=(entry,))])


# -- Actions -----------------------------------------------------------------------------------


def test_action_lists() -> None:
    assert len(ALL_ACTIONS) == len(set(ALL_ACTIONS)) == 39
    assert len(ALL_DATA_ACTIONS) == len(set(ALL_DATA_ACTIONS)) == 5
    assert not set(ALL_ACTIONS) & set(ALL_DATA_ACTIONS)
    assert Actions.IMPORT_IMAGE == "Microsoft.ContainerRegistry/registries/importImage/action"
    assert Actions.REPOSITORY_METADATA_WRITE == (
        "Microsoft.ContainerRegistry/registries/repositories/metadata/write"
    )
    names = [name for name in vars(Actions) if name.isupper()]
    assert {getattr(Actions, name) for name in names} == set(ALL_ACTIONS) | set(ALL_DATA_ACTIONS)
    validate_role_permissions([Permission(actions=ALL_ACTIONS, data_actions=ALL_DATA_ACTIONS)])
