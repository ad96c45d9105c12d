"""Azure-style role-based access control: role definitions, assignments, and their evaluation.

Pure: no I/O. The model follows Azure RBAC as ACR uses it:

- A role definition holds permission blocks. A block grants an action when one of its
  `actions` patterns matches it and none of its `not_actions` patterns does (`data_actions`
  / `not_data_actions` for data-plane actions). A role grants an action when any block does.
- Patterns compare case-insensitively; `*` stands for any run of characters, `/` included.
- An assignment gives a role at a scope, and applies to that scope and everything beneath it
  (segment-wise, case-insensitive). Effective permissions are the union over the assignments
  that cover the resource; there are no deny assignments.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

ROLE_DEFINITION_TYPE: Final = "Microsoft.Authorization/roleDefinitions"
_ROLE_DEFINITIONS_PATH: Final = "/providers/Microsoft.Authorization/roleDefinitions/"
# Longest action pattern accepted in a role definition, in characters.
MAX_ACTION_LENGTH: Final = 256

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Actions:
    """The names of every action the service checks (a namespace; not instantiated).

    Control-plane actions are listed in `ALL_ACTIONS`, the repository-level data actions
    (`REPOSITORY_*`) in `ALL_DATA_ACTIONS`.
    """

    __slots__ = ()

    REGISTRIES_READ: Final = "Microsoft.ContainerRegistry/registries/read"
    REGISTRIES_WRITE: Final = "Microsoft.ContainerRegistry/registries/write"
    REGISTRIES_DELETE: Final = "Microsoft.ContainerRegistry/registries/delete"
    IMPORT_IMAGE: Final = "Microsoft.ContainerRegistry/registries/importImage/action"
    LIST_CREDENTIALS: Final = "Microsoft.ContainerRegistry/registries/listCredentials/action"
    REGENERATE_CREDENTIAL: Final = (
        "Microsoft.ContainerRegistry/registries/regenerateCredential/action"
    )
    PULL: Final = "Microsoft.ContainerRegistry/registries/pull/read"
    PUSH: Final = "Microsoft.ContainerRegistry/registries/push/write"
    ARTIFACTS_DELETE: Final = "Microsoft.ContainerRegistry/registries/artifacts/delete"
    SIGN: Final = "Microsoft.ContainerRegistry/registries/sign/write"
    TOKENS_READ: Final = "Microsoft.ContainerRegistry/registries/tokens/read"
    TOKENS_WRITE: Final = "Microsoft.ContainerRegistry/registries/tokens/write"
    TOKENS_DELETE: Final = "Microsoft.ContainerRegistry/registries/tokens/delete"
    SCOPE_MAPS_READ: Final = "Microsoft.ContainerRegistry/registries/scopeMaps/read"
    SCOPE_MAPS_WRITE: Final = "Microsoft.ContainerRegistry/registries/scopeMaps/write"
    SCOPE_MAPS_DELETE: Final = "Microsoft.ContainerRegistry/registries/scopeMaps/delete"
    WEBHOOKS_READ: Final = "Microsoft.ContainerRegistry/registries/webhooks/read"
    WEBHOOKS_WRITE: Final = "Microsoft.ContainerRegistry/registries/webhooks/write"
    WEBHOOKS_DELETE: Final = "Microsoft.ContainerRegistry/registries/webhooks/delete"
    WEBHOOKS_PING: Final = "Microsoft.ContainerRegistry/registries/webhooks/ping/action"
    WEBHOOKS_CALLBACK_CONFIG: Final = (
        "Microsoft.ContainerRegistry/registries/webhooks/getCallbackConfig/action"
    )
    WEBHOOKS_LIST_EVENTS: Final = (
        "Microsoft.ContainerRegistry/registries/webhooks/listEvents/action"
    )
    CACHE_RULES_READ: Final = "Microsoft.ContainerRegistry/registries/cacheRules/read"
    CACHE_RULES_WRITE: Final = "Microsoft.ContainerRegistry/registries/cacheRules/write"
    CACHE_RULES_DELETE: Final = "Microsoft.ContainerRegistry/registries/cacheRules/delete"
    CREDENTIAL_SETS_READ: Final = "Microsoft.ContainerRegistry/registries/credentialSets/read"
    CREDENTIAL_SETS_WRITE: Final = "Microsoft.ContainerRegistry/registries/credentialSets/write"
    CREDENTIAL_SETS_DELETE: Final = "Microsoft.ContainerRegistry/registries/credentialSets/delete"
    ROLE_ASSIGNMENTS_READ: Final = "Microsoft.Authorization/roleAssignments/read"
    ROLE_ASSIGNMENTS_WRITE: Final = "Microsoft.Authorization/roleAssignments/write"
    ROLE_ASSIGNMENTS_DELETE: Final = "Microsoft.Authorization/roleAssignments/delete"
    ROLE_DEFINITIONS_READ: Final = "Microsoft.Authorization/roleDefinitions/read"
    ROLE_DEFINITIONS_WRITE: Final = "Microsoft.Authorization/roleDefinitions/write"
    ROLE_DEFINITIONS_DELETE: Final = "Microsoft.Authorization/roleDefinitions/delete"
    SUBSCRIPTIONS_READ: Final = "Microsoft.Resources/subscriptions/read"
    RESOURCE_GROUPS_READ: Final = "Microsoft.Resources/subscriptions/resourceGroups/read"
    RESOURCE_GROUPS_WRITE: Final = "Microsoft.Resources/subscriptions/resourceGroups/write"
    RESOURCE_GROUPS_DELETE: Final = "Microsoft.Resources/subscriptions/resourceGroups/delete"
    RESOURCES_READ: Final = "Microsoft.Resources/subscriptions/resources/read"

    # Data actions (checked with `data=True`).
    REPOSITORY_CONTENT_READ: Final = (
        "Microsoft.ContainerRegistry/registries/repositories/content/read"
    )
    REPOSITORY_CONTENT_WRITE: Final = (
        "Microsoft.ContainerRegistry/registries/repositories/content/write"
    )
    REPOSITORY_CONTENT_DELETE: Final = (
        "Microsoft.ContainerRegistry/registries/repositories/content/delete"
    )
    REPOSITORY_METADATA_READ: Final = (
        "Microsoft.ContainerRegistry/registries/repositories/metadata/read"
    )
    REPOSITORY_METADATA_WRITE: Final = (
        "Microsoft.ContainerRegistry/registries/repositories/metadata/write"
    )


# Every control-plane action the service checks.
ALL_ACTIONS: Final[tuple[str, ...]] = (
    Actions.REGISTRIES_READ,
    Actions.REGISTRIES_WRITE,
    Actions.REGISTRIES_DELETE,
    Actions.IMPORT_IMAGE,
    Actions.LIST_CREDENTIALS,
    Actions.REGENERATE_CREDENTIAL,
    Actions.PULL,
    Actions.PUSH,
    Actions.ARTIFACTS_DELETE,
    Actions.SIGN,
    Actions.TOKENS_READ,
    Actions.TOKENS_WRITE,
    Actions.TOKENS_DELETE,
    Actions.SCOPE_MAPS_READ,
    Actions.SCOPE_MAPS_WRITE,
    Actions.SCOPE_MAPS_DELETE,
    Actions.WEBHOOKS_READ,
    Actions.WEBHOOKS_WRITE,
    Actions.WEBHOOKS_DELETE,
    Actions.WEBHOOKS_PING,
    Actions.WEBHOOKS_CALLBACK_CONFIG,
    Actions.WEBHOOKS_LIST_EVENTS,
    Actions.CACHE_RULES_READ,
    Actions.CACHE_RULES_WRITE,
    Actions.CACHE_RULES_DELETE,
    Actions.CREDENTIAL_SETS_READ,
    Actions.CREDENTIAL_SETS_WRITE,
    Actions.CREDENTIAL_SETS_DELETE,
    Actions.ROLE_ASSIGNMENTS_READ,
    Actions.ROLE_ASSIGNMENTS_WRITE,
    Actions.ROLE_ASSIGNMENTS_DELETE,
    Actions.ROLE_DEFINITIONS_READ,
    Actions.ROLE_DEFINITIONS_WRITE,
    Actions.ROLE_DEFINITIONS_DELETE,
    Actions.SUBSCRIPTIONS_READ,
    Actions.RESOURCE_GROUPS_READ,
    Actions.RESOURCE_GROUPS_WRITE,
    Actions.RESOURCE_GROUPS_DELETE,
    Actions.RESOURCES_READ,
)

# Every data action the service checks.
ALL_DATA_ACTIONS: Final[tuple[str, ...]] = (
    Actions.REPOSITORY_CONTENT_READ,
    Actions.REPOSITORY_CONTENT_WRITE,
    Actions.REPOSITORY_CONTENT_DELETE,
    Actions.REPOSITORY_METADATA_READ,
    Actions.REPOSITORY_METADATA_WRITE,
)

_PERMISSION_FIELDS: Final = (
    ("actions", "actions"),
    ("not_actions", "notActions"),
    ("data_actions", "dataActions"),
    ("not_data_actions", "notDataActions"),
)


@dataclass(frozen=True, slots=True)
class Permission:
    """One permission block of a role definition (patterns, see `action_matches`).

    Not validated on construction; `validate_role_permissions` checks the entries.
    """

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        """The ARM shape: `{"actions", "notActions", "dataActions", "notDataActions"}`."""
        return {arm: list(getattr(self, attr)) for attr, arm in _PERMISSION_FIELDS}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Permission:
        """Read the ARM shape; a missing or null key is empty. Other keys are ignored.

        Raises ValueError naming the key if a value is not a list of strings. The entries
        themselves are not checked here (see `validate_role_permissions`).
        """
        values: dict[str, tuple[str, ...]] = {}
        for attr, arm in _PERMISSION_FIELDS:
            raw = obj.get(arm)
            if raw is None:
                values[attr] = ()
                continue
            if not isinstance(raw, list) or not all(isinstance(entry, str) for entry in raw):
                raise ValueError(f"permissions.{arm} must be a list of strings")
            values[attr] = tuple(raw)
        return cls(**values)


def role_definition_id(guid: str, scope: str = "/") -> str:
    """The ARM id of role definition `guid` defined at `scope` (`"/"`: the provider-level form
    `/providers/Microsoft.Authorization/roleDefinitions/<guid>`)."""
    return scope.rstrip("/") + _ROLE_DEFINITIONS_PATH + guid


@dataclass(frozen=True, slots=True)
class RoleDefinition:
    """A built-in or custom role. `id` is the bare GUID (ValueError otherwise)."""

    id: str
    name: str
    description: str
    permissions: tuple[Permission, ...]
    assignable_scopes: tuple[str, ...] = ("/",)
    builtin: bool = False

    def __post_init__(self) -> None:
        if not _GUID.fullmatch(self.id):
            raise ValueError(f"role definition id {self.id!r} is not a GUID")

    @property
    def resource_id(self) -> str:
        """The ARM id: provider-level for built-in roles, else under the first assignable
        scope (provider-level when that scope is `/` or there is none)."""
        if self.builtin or not self.assignable_scopes:
            return role_definition_id(self.id)
        return role_definition_id(self.id, self.assignable_scopes[0])

    def to_json(self) -> dict[str, Any]:
        """The Azure ARM representation of the role definition."""
        return {
            "id": self.resource_id,
            "name": self.id,
            "type": ROLE_DEFINITION_TYPE,
            "properties": {
                "roleName": self.name,
                "description": self.description,
                "type": "BuiltInRole" if self.builtin else "CustomRole",
                "permissions": [permission.to_json() for permission in self.permissions],
                "assignableScopes": list(self.assignable_scopes),
            },
        }


OWNER: Final = RoleDefinition(
    id="8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    name="Owner",
    description="Full access to every resource, including assigning roles to others.",
    permissions=(Permission(actions=("*",)),),
    builtin=True,
)
CONTRIBUTOR: Final = RoleDefinition(
    id="b24988ac-6180-42a0-ab88-20f7382dd24c",
    name="Contributor",
    description=(
        "Full access to every resource, except assigning roles and managing role definitions."
    ),
    permissions=(
        Permission(
            actions=("*",),
            not_actions=(
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ),
        ),
    ),
    builtin=True,
)
READER: Final = RoleDefinition(
    id="acdd72a7-3385-48ef-bd42-f606fba81ae7",
    name="Reader",
    description="Read access to every resource; no changes.",
    permissions=(Permission(actions=("*/read",)),),
    builtin=True,
)
ACR_PULL: Final = RoleDefinition(
    id="7f951dda-4ed3-4680-a7ca-43fe172d538d",
    name="AcrPull",
    description="Pull artifacts from a container registry.",
    permissions=(Permission(actions=(Actions.PULL,)),),
    builtin=True,
)
ACR_PUSH: Final = RoleDefinition(
    id="8311e382-0749-4cb8-b61a-304f252e45ec",
    name="AcrPush",
    description="Pull artifacts from and push artifacts to a container registry.",
    permissions=(Permission(actions=(Actions.PULL, Actions.PUSH)),),
    builtin=True,
)
ACR_DELETE: Final = RoleDefinition(
    id="c2f4ef07-c644-48eb-af81-4b1b4947fb11",
    name="AcrDelete",
    description="Delete artifacts from a container registry.",
    permissions=(Permission(actions=(Actions.ARTIFACTS_DELETE,)),),
    builtin=True,
)
ACR_IMAGE_SIGNER: Final = RoleDefinition(
    id="6cef56e8-d556-48e5-a04f-b8e64114680f",
    name="AcrImageSigner",
    description="Sign artifacts in a container registry.",
    permissions=(Permission(actions=(Actions.SIGN,)),),
    builtin=True,
)

BUILTIN_ROLES: Final[tuple[RoleDefinition, ...]] = (
    OWNER,
    CONTRIBUTOR,
    READER,
    ACR_PULL,
    ACR_PUSH,
    ACR_DELETE,
    ACR_IMAGE_SIGNER,
)
_BUILTIN_BY_NAME: Final = {role.name.lower(): role for role in BUILTIN_ROLES}
_BUILTIN_BY_ID: Final = {role.id.lower(): role for role in BUILTIN_ROLES}


def builtin_role(name_or_id: str) -> RoleDefinition | None:
    """The built-in role named `name_or_id` (case-insensitive), or with that GUID, or whose
    full role-definition id (`<any scope>/providers/Microsoft.Authorization/roleDefinitions/
    <guid>`) it is; None if there is none."""
    key = name_or_id.lower()
    if "/" in key:
        scope, marker, guid = key.rpartition(_ROLE_DEFINITIONS_PATH.lower())
        if not marker or (scope and not scope.startswith("/")):
            return None
        return _BUILTIN_BY_ID.get(guid)
    return _BUILTIN_BY_ID.get(key) or _BUILTIN_BY_NAME.get(key)


def action_matches(pattern: str, action: str) -> bool:
    """Whether `action` matches `pattern`: case-insensitive, `*` matches any run of characters
    (`/` included, possibly empty), every other character is literal. Runs in O(len(pattern)
    * len(action)) at worst."""
    p, a = pattern.lower(), action.lower()
    pi = ai = 0
    star, resume = -1, 0  # last `*` seen in p, and where in `a` its run currently ends
    while ai < len(a):
        if pi < len(p) and p[pi] == "*":
            star, resume = pi, ai
            pi += 1
        elif pi < len(p) and p[pi] == a[ai]:
            pi += 1
            ai += 1
        elif star >= 0:
            # Let the last `*` swallow one more character and retry from there.
            resume += 1
            pi, ai = star + 1, resume
        else:
            return False
    while pi < len(p) and p[pi] == "*":
        pi += 1
    return pi == len(p)


def permits(role: RoleDefinition, action: str, *, data: bool = False) -> bool:
    """Whether `role` grants `action`: some permission block has a matching `actions` pattern
    and no matching `not_actions` pattern (`data_actions` / `not_data_actions` if `data`)."""
    for block in role.permissions:
        granted, excluded = (
            (block.data_actions, block.not_data_actions)
            if data
            else (block.actions, block.not_actions)
        )
        if any(action_matches(p, action) for p in granted) and not any(
            action_matches(p, action) for p in excluded
        ):
            return True
    return False


def _segments(scope: str) -> list[str] | None:
    if not scope.startswith("/"):
        return None
    trimmed = scope.strip("/")
    return trimmed.lower().split("/") if trimmed else []


def scope_covers(assignment_scope: str, resource_scope: str) -> bool:
    """Whether an assignment at `assignment_scope` applies to `resource_scope`.

    True iff the assignment scope's segments are a prefix of the resource's, comparing
    case-insensitively and ignoring leading/trailing slashes: `/` covers everything,
    `/subscriptions/a` covers `/subscriptions/a/resourceGroups/rg` but not
    `/subscriptions/ab`. A scope that does not start with `/` covers, and is covered by,
    nothing.
    """
    covering, covered = _segments(assignment_scope), _segments(resource_scope)
    if covering is None or covered is None:
        return False
    return covered[: len(covering)] == covering


def is_assignable(role: RoleDefinition, scope: str) -> bool:
    """Whether `role` may be assigned at `scope` (some assignable scope covers it)."""
    return any(scope_covers(assignable, scope) for assignable in role.assignable_scopes)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A role assigned at a scope (to a principal that the caller keeps track of)."""

    scope: str
    role: RoleDefinition


def is_allowed(
    assignments: Iterable[Assignment], action: str, scope: str, *, data: bool = False
) -> bool:
    """Whether any of `assignments` covering `scope` grants `action` (see `permits`)."""
    return any(
        scope_covers(assignment.scope, scope) and permits(assignment.role, action, data=data)
        for assignment in assignments
    )


def registry_data_permissions(
    assignments: Iterable[Assignment], registry_scope: str
) -> frozenset[str]:
    """The docker token actions that `assignments` give on the registry at `registry_scope`.

    - `pull`: `registries/pull/read`, or the data action `repositories/content/read`;
    - `push`: `registries/push/write`, or `repositories/content/write`;
    - `delete`: `registries/artifacts/delete`, or `repositories/content/delete`;
    - `metadata_read`: `pull`, or `repositories/metadata/read`;
    - `metadata_write`: `push`, or `repositories/metadata/write`.
    """
    held = tuple(assignments)

    def allowed(action: str, data_action: str) -> bool:
        return is_allowed(held, action, registry_scope) or is_allowed(
            held, data_action, registry_scope, data=True
        )

    granted: set[str] = set()
    if allowed(Actions.PULL, Actions.REPOSITORY_CONTENT_READ):
        granted.update(("pull", "metadata_read"))
    if allowed(Actions.PUSH, Actions.REPOSITORY_CONTENT_WRITE):
        granted.update(("push", "metadata_write"))
    if allowed(Actions.ARTIFACTS_DELETE, Actions.REPOSITORY_CONTENT_DELETE):
        granted.add("delete")
    if is_allowed(held, Actions.REPOSITORY_METADATA_READ, registry_scope, data=True):
        granted.add("metadata_read")
    if is_allowed(held, Actions.REPOSITORY_METADATA_WRITE, registry_scope, data=True):
        granted.add("metadata_write")
    return frozenset(granted)


def _entry_problem(entry: str) -> str | None:
    if not entry.strip():
        return "is empty or blank"
    if len(entry) > MAX_ACTION_LENGTH:
        return f"is longer than {MAX_ACTION_LENGTH} characters"
    if any(unicodedata.category(char) == "Cc" for char in entry):
        return "contains a control character"
    return None


def validate_role_permissions(permissions: Iterable[Permission]) -> None:
    """Check every entry of every block; raise ValueError naming the first bad one.

    An entry is bad if it is empty or only whitespace, longer than `MAX_ACTION_LENGTH`
    characters, or contains a control character (Unicode category Cc). The message names
    the entry as `permissions[i].<armField>[j]` with its value (truncated if long).
    """
    for i, block in enumerate(permissions):
        for attr, arm in _PERMISSION_FIELDS:
            entries: tuple[str, ...] = getattr(block, attr)
            for j, entry in enumerate(entries):
                problem = _entry_problem(entry)
                if problem is not None:
                    shown = entry if len(entry) <= 60 else entry[:60] + "…"
                    raise ValueError(f"permissions[{i}].{arm}[{j}] {shown!r} {problem}")
