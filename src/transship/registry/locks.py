"""Image locking: the checks that ACR's changeable attributes impose on writes and deletes.

A repository, a tag and a manifest each carry deleteEnabled, writeEnabled, readEnabled and
listEnabled (`az acr repository update`, `az acr manifest update-metadata`). What they
forbid, as ACR documents it:

- a repository with writeEnabled false takes no manifest and moves no tag, and nothing in
  it can be deleted; with deleteEnabled false nothing in it can be deleted;
- a tag with writeEnabled false cannot be moved (pushed to, imported onto, even with
  `--force`) nor deleted; with deleteEnabled false it cannot be deleted;
- a manifest with writeEnabled or deleteEnabled false cannot be deleted (its bytes never
  change: a digest names them). Its other tags stay movable, as on ACR;
- readEnabled false refuses the pull of the manifest (by its tag, when set on a tag);
  listEnabled false leaves it out of listings.

Every check runs inside the transaction that would do the write, after the repository lock
is taken, so a lock set concurrently is either seen or set after the write committed. A
refusal is `Denied` with reason "locked", raised before anything is changed.
"""

from __future__ import annotations

from transship.errors import Denied
from transship.metadata.queries import RegistryQueries
from transship.metadata.records import Attributes
from transship.oci.digest import Digest

LOCKED = "locked"
_DISALLOWED = "the operation is disallowed on this registry, repository or image"


def _refusal(subject: str, name: str, flag: str, unlock: str) -> Denied:
    return Denied(
        f"{subject} {name} is locked ({flag} is false): {_DISALLOWED}; "
        f"unlock it with `{unlock} --{flag.replace('Enabled', '')}-enabled true` first",
        subject=subject,
        reason=LOCKED,
        detail={subject: name, "attribute": flag},
    )


def _repository_refusal(repository: str, flag: str) -> Denied:
    return _refusal(
        "repository", repository, flag, f"az acr repository update --repository {repository}"
    )


def _tag_refusal(repository: str, tag: str, flag: str) -> Denied:
    image = f"{repository}:{tag}"
    return _refusal("tag", image, flag, f"az acr repository update --image {image}")


def _manifest_refusal(repository: str, digest: Digest, flag: str) -> Denied:
    image = f"{repository}@{digest}"
    return _refusal("manifest", image, flag, f"az acr manifest update-metadata {image}")


def _delete_flag(attributes: Attributes) -> str | None:
    """The attribute that forbids deleting, or None."""
    if not attributes.write_enabled:
        return "writeEnabled"
    if not attributes.delete_enabled:
        return "deleteEnabled"
    return None


async def _check_repository(
    q: RegistryQueries, repository_id: int, repository: str, *, deleting: bool
) -> None:
    attributes = await q.attributes("repository", repository_id)
    if attributes is None:
        return
    if not attributes.write_enabled:
        raise _repository_refusal(repository, "writeEnabled")
    if deleting and not attributes.delete_enabled:
        raise _repository_refusal(repository, "deleteEnabled")


async def check_writable(
    q: RegistryQueries, repository_id: int, repository: str, tags: list[str]
) -> None:
    """Before storing a manifest in the repository and pointing `tags` at it. Raises
    Denied (reason "locked") when the repository or one of the existing tags is locked
    against writes."""
    await _check_repository(q, repository_id, repository, deleting=False)
    for tag in tags:
        attributes = await q.attributes("tag", repository_id, tag)
        if attributes is not None and not attributes.write_enabled:
            raise _tag_refusal(repository, tag, "writeEnabled")


async def check_tag_deletable(
    q: RegistryQueries, repository_id: int, repository: str, tag: str
) -> None:
    """Before deleting a tag (not its manifest). Raises Denied (reason "locked")."""
    await _check_repository(q, repository_id, repository, deleting=True)
    attributes = await q.attributes("tag", repository_id, tag)
    flag = None if attributes is None else _delete_flag(attributes)
    if flag is not None:
        raise _tag_refusal(repository, tag, flag)


async def check_manifest_deletable(
    q: RegistryQueries, repository_id: int, repository: str, digest: Digest
) -> None:
    """Before deleting a manifest with its tags. Raises Denied (reason "locked") when the
    repository, the manifest or one of its tags is locked against deletion."""
    await _check_repository(q, repository_id, repository, deleting=True)
    attributes = await q.attributes("manifest", repository_id, digest)
    flag = None if attributes is None else _delete_flag(attributes)
    if flag is not None:
        raise _manifest_refusal(repository, digest, flag)
    for tag in await q.locked_tags(repository_id, digest=digest):
        tag_attributes = await q.attributes("tag", repository_id, tag)
        assert tag_attributes is not None
        raise _tag_refusal(repository, tag, _delete_flag(tag_attributes) or "deleteEnabled")


async def check_repository_deletable(
    q: RegistryQueries, repository_id: int, repository: str
) -> None:
    """Before deleting a whole repository. Raises Denied (reason "locked") when it, or any
    tag or manifest in it, is locked against deletion: nothing is deleted then."""
    await _check_repository(q, repository_id, repository, deleting=True)
    for tag in await q.locked_tags(repository_id):
        attributes = await q.attributes("tag", repository_id, tag)
        assert attributes is not None
        raise _tag_refusal(repository, tag, _delete_flag(attributes) or "deleteEnabled")
    for digest in await q.locked_manifests(repository_id):
        attributes = await q.attributes("manifest", repository_id, digest)
        assert attributes is not None
        raise _manifest_refusal(repository, digest, _delete_flag(attributes) or "deleteEnabled")


def check_readable(readable: bool, repository: str, reference: str) -> None:
    """After resolving a manifest to pull. Raises Denied (reason "locked") when the
    repository, the tag or the manifest has readEnabled false."""
    if not readable:
        image = f"{repository}{'@' if ':' in reference else ':'}{reference}"
        raise Denied(
            f"{image} is locked (readEnabled is false): {_DISALLOWED}",
            subject="manifest",
            reason=LOCKED,
            detail={"reference": reference, "attribute": "readEnabled"},
        )
