"""The one failure type of the import engine: what failed, where, and whether to retry."""

from __future__ import annotations

from enum import StrEnum

from transship.imports.model import TargetTag


class Step(StrEnum):
    RESOLVE = "resolve"
    AUTHENTICATE = "authenticate"
    PLAN = "plan"
    COPY = "copy"
    COMMIT = "commit"


class ImportFailure(Exception):
    """An import cannot go on.

    `code` is what the operation record and the ARM error carry (e.g. `UpstreamUnauthorized`,
    `ManifestUnknown`, `DIGEST_INVALID`, `TagAlreadyExists`); `obj` names the manifest, blob or
    host concerned; `upstream_status` is the HTTP status the upstream answered, if any;
    `retryable` says whether trying the same step again may succeed (the engine's retry
    policy decides how often).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        step: Step,
        obj: str | None = None,
        upstream_status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.step = step
        self.obj = obj
        self.upstream_status = upstream_status
        self.retryable = retryable


def tag_exists_failure(target: TargetTag, step: Step = Step.RESOLVE) -> ImportFailure:
    """The failure of an import without `force` whose target tag `target` exists."""
    return ImportFailure(
        "TagAlreadyExists",
        # ACR's sentence first (scripts match it), then the way out: `--force` is the flag
        # of both `az acr import` and `transship import`, `mode: Force` the ARM field.
        f"Tag {target} already exists in target registry. Import with --force "
        "(mode Force) to overwrite it.",
        step=step,
        obj=str(target),
    )
