"""`transship repository list|show-tags|show-manifests|delete` (az acr repository …).

These use the ACR data plane of the registry: requests go to the server URL with the
`Host` header set to the registry's login server (found with registry show), and follow
`Link: <…>; rel="next"` pages until the listing ends or `--top` items were printed.
"""

from __future__ import annotations

import click
from pydantic import MISSING

from transship.cli.client import DataPlane, repository_path
from transship.cli.common import CONTEXT, api, name_option, resource_group_option, service_command
from transship.cli.output import (
    JSON,
    emit,
    emit_json,
    human_bytes,
    output_option,
    plural,
    short_time,
)
from transship.cli.pull_hint import registry_login_server
from transship.wire.acr import (
    DeletedRepository,
    ManifestAttributes,
    ManifestList,
    Repositories,
    TagAttributes,
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
    """List and delete a registry's repositories, tags and manifests (az acr repository)."""


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


@repository.command(name="delete", context_settings=CONTEXT)
@name_option
@repository_option
@resource_group_option
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@output_option
@service_command
def delete_repository(
    registry: str, repository: str, resource_group: str | None, yes: bool, output: str
) -> None:
    """Delete a repository: all its tags and manifests.

    \b
    Examples:
      transship repository delete --name myregistry --repository hello-world
      transship repository delete --name myregistry --repository hello-world --yes
    """
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


def _present(value: str | MISSING) -> str | None:
    """A field the server may leave out, as text or None."""
    return value if isinstance(value, str) else None
