"""`transship repository list|show|show-tags|show-manifests|untag|delete` (az acr repository
…).

These use the ACR data plane of the registry: requests go to the server URL with the
`Host` header set to the registry's login server (found with registry show), and follow
`Link: <…>; rel="next"` pages until the listing ends or `--top` items were printed.
"""

from __future__ import annotations

import click
from pydantic import MISSING

from transship.cli.client import DataPlane, repository_path, seg
from transship.cli.common import CONTEXT, api, name_option, resource_group_option, service_command
from transship.cli.output import (
    JSON,
    CommandFailed,
    emit,
    emit_json,
    human_bytes,
    output_option,
    plain,
    plural,
    short_time,
)
from transship.cli.pull_hint import registry_login_server
from transship.wire.acr import (
    DeletedRepository,
    ManifestAttributes,
    ManifestItem,
    ManifestList,
    Repositories,
    RepositoryAttributes,
    TagAttributes,
    TagItem,
    TagList,
)

ORDERBY = {"time_desc": "timedesc", "time_asc": "timeasc"}

repository_option = click.option(
    "--repository", required=True, metavar="REPO", help="Name of the repository, e.g. team/app."
)
top_option = click.option(
    "--top", type=click.IntRange(min=1), metavar="N", help="Print at most N items."
)
orderby_option = click.option(
    "--orderby",
    type=click.Choice(sorted(ORDERBY)),
    help="Order by last update time (default: by name / digest).",
)
detail_option = click.option("--detail", is_flag=True, help="Show every attribute, not just names.")


def data_plane(registry: str, resource_group: str | None) -> DataPlane:
    """The registry's data plane, reached by its login server (`registry_login_server`)."""
    management = api()
    login_server = registry_login_server(management, registry, resource_group)
    return DataPlane(management.http, login_server, management.auth.basic)


@click.group(context_settings=CONTEXT)
def repository() -> None:
    """Show, list, untag and delete a registry's repositories, tags and manifests (az acr
    repository)."""


@repository.command(name="list", context_settings=CONTEXT)
@name_option
@resource_group_option
@top_option
@output_option
@service_command
def list_repositories(
    registry: str, resource_group: str | None, top: int | None, output: str
) -> None:
    """List the repositories of a registry.

    \b
    Examples:
      transship repository list --name myregistry
      transship repository list --name myregistry --top 10 -o json
    """
    names = list(
        data_plane(registry, resource_group).pages(
            "/acr/v1/_catalog", Repositories, lambda page: page.repositories, top=top
        )
    )
    emit(output, names, ("REPOSITORY",), lambda v: [(n,) for n in v], empty="No repositories.")


@repository.command(name="show-tags", context_settings=CONTEXT)
@name_option
@repository_option
@detail_option
@orderby_option
@top_option
@resource_group_option
@output_option
@service_command
def show_tags(
    registry: str,
    repository: str,
    detail: bool,
    orderby: str | None,
    top: int | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Show the tags of a repository.

    \b
    Examples:
      transship repository show-tags --name myregistry --repository hello-world
      Newest first, with digests and times:
        transship repository show-tags --name myregistry --repository hello-world \\
          --detail --orderby time_desc
    """
    query = {"orderby": ORDERBY[orderby]} if orderby else None
    tags: list[TagAttributes] = list(
        data_plane(registry, resource_group).pages(
            f"/acr/v1/{repository_path(repository)}/_tags",
            TagList,
            lambda page: page.tags,
            query=query,
            top=top,
        )
    )
    if detail:
        emit(
            output,
            tags,
            ("NAME", "DIGEST", "CREATED", "LAST UPDATED"),
            lambda v: [
                (t.name, t.digest, short_time(t.created_time), short_time(t.last_update_time))
                for t in v
            ],
            empty="No tags.",
        )
    else:
        names = [t.name for t in tags]
        emit(output, names, ("TAG",), lambda v: [(n,) for n in v], empty="No tags.")


@repository.command(name="show-manifests", context_settings=CONTEXT)
@name_option
@repository_option
@detail_option
@orderby_option
@top_option
@resource_group_option
@output_option
@service_command
def show_manifests(
    registry: str,
    repository: str,
    detail: bool,
    orderby: str | None,
    top: int | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Show the manifests of a repository: every platform of an imported index, with tags.

    \b
    Examples:
      transship repository show-manifests --name myregistry --repository hello-world
      With media types, platforms and sizes:
        transship repository show-manifests --name myregistry --repository hello-world --detail
    """
    query = {"orderby": ORDERBY[orderby]} if orderby else None
    manifests: list[ManifestAttributes] = list(
        data_plane(registry, resource_group).pages(
            f"/acr/v1/{repository_path(repository)}/_manifests",
            ManifestList,
            lambda page: page.manifests,
            query=query,
            top=top,
        )
    )
    if detail:
        emit(
            output,
            manifests,
            ("DIGEST", "TAGS", "MEDIA TYPE", "PLATFORM", "SIZE", "LAST UPDATED"),
            lambda v: [
                (
                    m.digest,
                    m.tags,
                    m.media_type,
                    "/".join(p for p in (_present(m.os), _present(m.architecture)) if p),
                    human_bytes(m.image_size),
                    short_time(m.last_update_time),
                )
                for m in v
            ],
            empty="No manifests.",
        )
    else:
        brief: list[dict[str, object]] = [
            {"digest": m.digest, "tags": m.tags, "timestamp": m.last_update_time} for m in manifests
        ]
        emit(
            output,
            brief,
            ("DIGEST", "TAGS", "TIMESTAMP"),
            lambda v: [(m["digest"], m["tags"], short_time(m["timestamp"])) for m in v],
            empty="No manifests.",
        )


def parse_image(image: str, *, tag_required: bool) -> tuple[str, str, bool]:
    """`REPO:TAG` or `REPO@DIGEST` as (repository, tag or digest, is a digest); a bare `REPO`
    means its tag `latest` unless `tag_required`. Raises click.BadParameter."""
    repository, at, digest = image.partition("@")
    if at:
        if not repository or not digest or tag_required:
            wanted = "REPO:TAG" if tag_required else "REPO:TAG or REPO@DIGEST"
            raise click.BadParameter(f"{image!r} is not {wanted}", param_hint="--image")
        return repository, digest, True
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        repository, tag = image[:colon], image[colon + 1 :]
    elif tag_required:
        raise click.BadParameter(
            f"{image!r} names no tag: give REPO:TAG (e.g. hello-world:v1)", param_hint="--image"
        )
    else:
        repository, tag = image, "latest"
    if not repository or not tag:
        raise click.BadParameter(f"{image!r} is not REPO:TAG", param_hint="--image")
    return repository, tag, False


def _attribute_rows(attributes: dict[str, object]) -> list[tuple[str, object]]:
    """An attributes object (as JSON) as (field, value) rows, its changeable attributes
    flattened."""
    rows: list[tuple[str, object]] = []
    for key, value in attributes.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((key, value))
    return rows


@repository.command(name="show", context_settings=CONTEXT)
@name_option
@click.option("--repository", metavar="REPO", help="The repository to show, e.g. team/app.")
@click.option(
    "--image",
    "-t",
    metavar="REPO:TAG|REPO@DIGEST",
    help="A tag or a manifest to show instead (REPO alone means REPO:latest).",
)
@resource_group_option
@output_option
@service_command
def show_repository(
    registry: str,
    repository: str | None,
    image: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Show the attributes of a repository, or of one tag or manifest (az acr repository show).

    A repository: its manifest and tag counts and times. A tag: its digest and times. A
    manifest: its media type, platform, size and tags. Give --repository or --image.

    \b
    Examples:
      transship repository show --name myregistry --repository hello-world
      transship repository show --name myregistry --image hello-world:latest
      transship repository show --name myregistry --image hello-world@sha256:<digest>
      The digest of a tag:
        transship repository show -n myregistry -t hello-world:v1 --query digest -o tsv
    """
    if (repository is None) == (image is None):
        raise click.UsageError("give one of --repository REPO, --image REPO:TAG|REPO@DIGEST")
    plane = data_plane(registry, resource_group)
    attributes: RepositoryAttributes | TagAttributes | ManifestAttributes
    if repository is not None:
        attributes = plane.answer(
            "GET", f"/acr/v1/{repository_path(repository)}", RepositoryAttributes
        )
    else:
        assert image is not None
        name, reference, by_digest = parse_image(image, tag_required=False)
        if by_digest:
            url = f"/acr/v1/{repository_path(name)}/_manifests/{seg(reference)}"
            attributes = plane.answer("GET", url, ManifestItem).manifest
        else:
            url = f"/acr/v1/{repository_path(name)}/_tags/{seg(reference)}"
            attributes = plane.answer("GET", url, TagItem).tag
    # As az prints it: the repository, or the tag's or manifest's own attributes.
    emit(output, attributes, ("FIELD", "VALUE"), lambda a: _attribute_rows(plain(a)))


@repository.command(name="untag", context_settings=CONTEXT)
@name_option
@click.option(
    "--image", "-t", required=True, metavar="REPO:TAG", help="The tag to remove, e.g. app:v1."
)
@resource_group_option
@output_option
@service_command
def untag(registry: str, image: str, resource_group: str | None, output: str) -> None:
    """Remove a tag from a repository (az acr repository untag).

    The manifest it pointed at stays, reachable by its digest and any other tag; only the
    name goes. To delete the manifest itself, use `transship repository delete`.

    \b
    Examples:
      transship repository untag --name myregistry --image hello-world:v1
    """
    name, tag, _ = parse_image(image, tag_required=True)
    plane = data_plane(registry, resource_group)
    response = plane.request("DELETE", f"/acr/v1/{repository_path(name)}/_tags/{seg(tag)}")
    if response.status not in (200, 202, 204):
        raise CommandFailed(f"untagging {name}:{tag} was answered {response.status}")
    if output == JSON:
        emit_json({"repository": name, "tag": tag, "untagged": True})
    else:
        click.echo(f"Untagged {name}:{tag} in {registry}.")


@repository.command(name="delete", context_settings=CONTEXT)
@name_option
@click.option("--repository", metavar="REPO", help="The repository to delete, e.g. team/app.")
@click.option(
    "--image",
    "-t",
    metavar="REPO:TAG|REPO@DIGEST",
    help="Delete one manifest instead, named by digest or by a tag of it (all its tags go too).",
)
@resource_group_option
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@output_option
@service_command
def delete_repository(
    registry: str,
    repository: str | None,
    image: str | None,
    resource_group: str | None,
    yes: bool,
    output: str,
) -> None:
    """Delete a repository (all its tags and manifests), or one manifest with its tags.

    As az acr repository delete: --repository deletes the repository; --image deletes the
    manifest that REPO@DIGEST names or that REPO:TAG points at, and with it every tag that
    points at it (to remove only a tag, use `transship repository untag`).

    \b
    Examples:
      transship repository delete --name myregistry --repository hello-world
      transship repository delete --name myregistry --repository hello-world --yes
      transship repository delete --name myregistry --image hello-world:v1 --yes
    """
    if (repository is None) == (image is None):
        raise click.UsageError("give one of --repository REPO, --image REPO:TAG|REPO@DIGEST")
    if image is not None:
        _delete_manifest(registry, image, resource_group, yes, output)
        return
    assert repository is not None
    if not yes:
        click.confirm(
            f"This deletes the repository '{repository}' and every image in it. Continue?",
            abort=True,
            err=True,
        )
    plane = data_plane(registry, resource_group)
    result = plane.answer("DELETE", f"/acr/v1/{repository_path(repository)}", DeletedRepository)
    if output == JSON:
        emit_json(result)
    else:
        click.echo(
            f"Deleted repository '{repository}': "
            f"{plural(len(result.manifests_deleted), 'manifest')}, "
            f"{plural(len(result.tags_deleted), 'tag')}."
        )


def _delete_manifest(
    registry: str, image: str, resource_group: str | None, yes: bool, output: str
) -> None:
    name, reference, by_digest = parse_image(image, tag_required=False)
    plane = data_plane(registry, resource_group)
    # A tag is resolved to its manifest first, as az does, so the prompt names the digest
    # and every tag that goes with it.
    if by_digest:
        url = f"/acr/v1/{repository_path(name)}/_manifests/{seg(reference)}"
        manifest = plane.answer("GET", url, ManifestItem).manifest
    else:
        url = f"/acr/v1/{repository_path(name)}/_tags/{seg(reference)}"
        digest = plane.answer("GET", url, TagItem).tag.digest
        url = f"/acr/v1/{repository_path(name)}/_manifests/{seg(digest)}"
        manifest = plane.answer("GET", url, ManifestItem).manifest
    tags = list(manifest.tags)
    if not yes:
        shown = f" and its tags {', '.join(tags)}" if tags else ""
        click.confirm(
            f"This deletes the manifest {name}@{manifest.digest}{shown}. Continue?",
            abort=True,
            err=True,
        )
    response = plane.request("DELETE", url)
    if response.status not in (200, 202, 204):
        raise CommandFailed(f"deleting {name}@{manifest.digest} was answered {response.status}")
    if output == JSON:
        emit_json({"repository": name, "digest": manifest.digest, "tagsDeleted": tags})
    else:
        click.echo(f"Deleted {name}@{manifest.digest} ({plural(len(tags), 'tag')}).")


def _present(value: str | MISSING) -> str | None:
    """A field the server may leave out, as text or None."""
    return value if isinstance(value, str) else None
