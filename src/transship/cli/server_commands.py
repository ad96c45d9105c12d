"""The server's own commands: `serve`, `gc`, `check`, `keys`, `tls`. They run the server or
open its data directory and database directly; the client commands (cli/commands_*.py) never
import this module or any server code (an import-linter contract in pyproject.toml)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from transship.config import Settings
from transship.metadata.db import DatabaseUrlError
from transship.storage.base import StorageError

T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v not in (None, ())}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"] else err["msg"]
        for err in exc.errors()
    )


def configure_logging(level: str, *, processes: bool = False) -> None:
    """Log to stderr at `level`; with `processes` (a command running several), each line
    names its process id."""
    pid = "[%(process)d] " if processes else ""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {pid}%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


_logging = configure_logging


if TYPE_CHECKING:
    from transship.api.services import Services


def _offline(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    """Run `action` against the data directory and database directly (no server needed;
    safe while one runs)."""
    from transship.api.services import build_services

    async def run() -> T:
        try:
            services = await build_services(settings)
        except (DatabaseUrlError, StorageError, OSError) as exc:
            raise click.ClickException(f"cannot open the registry: {exc}") from None
        try:
            return await action(services)
        finally:
            await services.close()

    return asyncio.run(run())


_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Blob store and SQLite database (default: ~/.local/share/transship).",
)
_database_url = click.option(
    "--database-url",
    metavar="URL",
    help=(
        "postgresql://user:pass@host:port/db, or sqlite:///path "
        "(default: SQLite in the data directory)."
    ),
)

_storage_url = click.option(
    "--storage-url",
    metavar="URL",
    help=(
        "Where blobs and upload staging live: s3://bucket/prefix?endpoint=…&region=…, "
        "azure://account/container/prefix or file:///path (default: the data directory). "
        "Credentials come from AWS_* / AZURE_STORAGE_* variables, never the URL."
    ),
)


@click.command()
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Address to listen on; repeat for several (default: 127.0.0.1 and ::1).",
)
@click.option("--port", type=int, help="Port to listen on (default: 5000).")
@_data_dir
@_database_url
@_storage_url
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log verbosity; DEBUG adds an access log.",
)
@click.option(
    "--tls",
    is_flag=True,
    default=None,
    help="Serve HTTPS with a certificate from a local CA created in <data-dir>/tls "
    "(clients trust its ca.pem; see `transship tls export-ca`).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve HTTPS with this PEM certificate (chain, leaf first) instead; needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Unencrypted PEM private key of --tls-cert.",
)
@click.option(
    "--tls-host",
    "tls_hosts",
    multiple=True,
    metavar="NAME",
    help="Extra DNS name or address for the local CA's server certificate; repeatable "
    "(localhost, *.localhost, 127.0.0.1, ::1, the --host addresses and the login server "
    "suffix are always in it).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="HTTP processes sharing the port, to use every core (default: 1; setting "
    "http_workers). This process runs the background work once for all of them; a child "
    "that dies is restarted.",
)
@click.option(
    "--no-background-work",
    "no_background_work",
    is_flag=True,
    default=None,
    help="Serve HTTP only: no imports, GC, upload expiry or webhook deliveries here "
    "(run `transship worker` for them; setting background_work).",
)
def serve(
    hosts: tuple[str, ...],
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    storage_url: str | None,
    log_level: str | None,
    tls: bool | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_hosts: tuple[str, ...],
    workers: int | None,
    no_background_work: bool | None,
) -> None:
    """Run the registry server until interrupted (SIGINT or SIGTERM: requests in progress
    finish, running imports go back to the queue)."""
    settings = _settings(
        hosts=hosts,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        log_level=log_level.upper() if log_level else None,
        tls=tls or None,
        tls_certificate=tls_cert,
        tls_key=tls_key,
        tls_hosts=tls_hosts,
        http_workers=workers,
        background_work=False if no_background_work else None,
    )
    refuse_unworkable_settings(settings)
    configure_logging(settings.log_level, processes=settings.http_workers > 1)
    ssl_context = server_ssl_context(settings) if settings.tls_enabled else None
    from transship.cli.server import serve as run_server

    try:
        asyncio.run(run_server(settings, ssl_context))
    except (DatabaseUrlError, StorageError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def refuse_unworkable_settings(settings: Settings) -> None:
    """Stop `serve` before it binds anything when settings cannot work (an `http://`
    upstream endpoint without `insecure`, an endpoint without a scheme, an egress rule that
    never takes effect…): a ClickException (exit 1) listing each setting, its value and
    why. Pydantic has already refused values of the wrong type or range."""
    from transship.imports.settings_check import import_settings_problems

    problems = import_settings_problems(settings)
    if problems:
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise click.ClickException(
            f"settings that cannot work (see docs/configuration.md):\n{lines}"
        )


def certificate_hosts(settings: Settings) -> list[str]:
    """Names the local CA's server certificate covers besides `tls.DEFAULT_HOSTS`: the
    configured `tls_hosts`, the listen addresses, and the login server suffix's host with
    its `*.` wildcard (registries' login servers are `<name>.<suffix>`)."""
    names = [*settings.tls_hosts, *settings.hosts]
    suffix_host = urlsplit(f"//{settings.effective_login_server_suffix}").hostname
    if suffix_host:
        names.append(suffix_host)
        if not _is_address(suffix_host):
            names.append(f"*.{suffix_host}")
    return names


def server_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The server-side SSL context `settings` ask for: the given certificate and key, else
    the local CA's certificate (created or renewed as needed). Logs what clients must trust;
    raises ClickException when the files are unusable."""
    from transship.identity import tls

    log = logging.getLogger("transship")
    try:
        if settings.tls_certificate is not None and settings.tls_key is not None:
            files = tls.given_certificate(settings.tls_certificate, settings.tls_key)
        else:
            files = tls.ensure_local_ca(settings.tls_dir, certificate_hosts(settings))
        context = tls.server_ssl_context(files)
    except (tls.TlsError, OSError) as exc:
        raise click.ClickException(f"TLS: {exc}") from None
    if files.ca_certificate is not None:
        log.info(
            "TLS: clients should trust %s (REQUESTS_CA_BUNDLE / SSL_CERT_FILE / --cert-dir)",
            files.ca_certificate,
        )
    else:
        log.info("TLS: serving %s", files.certificate)
    return context


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@click.command()
@_data_dir
@_database_url
@_storage_url
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@click.option(
    "--grace-seconds", type=int, help="Never remove content younger than this (default: 3600)."
)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def gc(
    data_dir: Path | None,
    database_url: str | None,
    storage_url: str | None,
    dry_run: bool,
    grace_seconds: int | None,
    output: str,
) -> None:
    """Remove unreferenced blobs, expired uploads, and untagged manifests past their
    registry's retention policy (safe while the server runs)."""
    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        gc_grace_seconds=grace_seconds,
        log_level="WARNING",
    )
    _logging(settings.log_level)
    report = _offline(settings, lambda services: services.gc.run(dry_run=dry_run))
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "dryRun": report.dry_run,
                    "expiredManifests": [str(d) for _, d in report.expired_manifests],
                    "deletedBlobs": [str(d) for d in report.deleted_blobs],
                    "freedBytes": report.freed_bytes,
                    "orphanFiles": [str(d) for d in report.orphan_files],
                    "droppedLinks": len(report.dropped_links),
                    "expiredUploads": report.expired_uploads,
                    "strayStaging": report.stray_staging,
                },
                indent=2,
            )
        )
    else:
        click.echo(report.summary())


@click.command()
@_data_dir
@_database_url
@_storage_url
@click.option("--verify-digests", is_flag=True, help="Also re-hash every blob (reads all bytes).")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def check(
    data_dir: Path | None,
    database_url: str | None,
    storage_url: str | None,
    verify_digests: bool,
    output: str,
) -> None:
    """Verify tags, manifests, blobs, uploads and import jobs are consistent; exit 1 on problems."""
    settings = _settings(
        data_dir=data_dir, database_url=database_url, storage_url=storage_url, log_level="WARNING"
    )
    _logging(settings.log_level)
    report = _offline(
        settings, lambda services: services.checker.run(verify_digests=verify_digests)
    )
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "blobs": report.checked_blobs,
                    "manifests": report.checked_manifests,
                    "tags": report.checked_tags,
                    "problems": report.problems,
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        click.echo(
            f"checked {report.checked_blobs} blobs, {report.checked_manifests} manifests, "
            f"{report.checked_tags} tags: {len(report.problems)} problems"
        )
    if not report.ok:
        sys.exit(1)


@click.group()
def tls() -> None:
    """The local certificate authority of `transship serve --tls`."""


@tls.command("export-ca")
@_data_dir
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the CA certificate to this file instead of standard output.",
)
def export_ca(data_dir: Path | None, output: Path | None) -> None:
    """Print the local CA certificate (PEM) for clients to trust.

    Install it where clients look: for Docker
    /etc/docker/certs.d/<host:port>/ca.crt, for Podman and Skopeo a --cert-dir, for Python
    tools REQUESTS_CA_BUNDLE or SSL_CERT_FILE, for curl --cacert.
    """
    settings = _settings(data_dir=data_dir)
    from transship.identity.tls import CA_FILE

    ca_file = settings.tls_dir / CA_FILE
    try:
        pem = ca_file.read_text(encoding="ascii")
    except FileNotFoundError:
        raise click.ClickException(
            f"no local CA in {settings.tls_dir}: `transship serve --tls` creates it on first start"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {ca_file}: {exc}") from None
    if output is None or str(output) == "-":
        click.echo(pem, nl=False)
        return
    try:
        output.write_text(pem, encoding="ascii")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {ca_file} to {output}", err=True)


@click.group()
def keys() -> None:
    """The keys that sign every token the service issues."""


@keys.command("rotate")
@_data_dir
@_database_url
def rotate_keys(data_dir: Path | None, database_url: str | None) -> None:
    """Make a new token-signing key active (safe while servers run).

    Tokens signed with the previous key stay valid until they expire: that key stays in the
    JWKS and keeps verifying. Running servers start signing with the new key within a
    minute.
    """
    settings = _settings(data_dir=data_dir, database_url=database_url, log_level="WARNING")
    _logging(settings.log_level)
    kid = _offline(settings, lambda services: services.tokens.keys.rotate())
    click.echo(f"new signing key {kid} is active")


@click.command()
@_data_dir
@_database_url
@_storage_url
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log verbosity.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes to run; each claims up to import_workers imports. A child that "
    "dies is restarted.",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    help="Answer GET /healthz and /readyz (each background loop's liveness) on this port "
    "(default: no HTTP at all).",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the health endpoint.",
)
def worker(
    data_dir: Path | None,
    database_url: str | None,
    storage_url: str | None,
    log_level: str | None,
    processes: int,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run the background work without serving the registry: imports, periodic GC and
    upload expiry, webhook deliveries.

    Start it with the same settings (data directory or storage, database, service key) as
    the `serve --no-background-work` processes it works for; run as many as you like, on
    any machines sharing the database: jobs are claimed with leases, and the import limits
    (import_max_running, import_max_running_per_registry) hold across all of them.
    SIGTERM or SIGINT hands running imports back to the queue at once; a worker killed
    outright (kill -9) has its imports taken over by another after import_lease_seconds,
    without fetching again the blobs they had already stored.
    """
    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        log_level=log_level.upper() if log_level else None,
    )
    refuse_unworkable_settings(settings)
    configure_logging(settings.log_level, processes=processes > 1)
    from transship.cli.processes import bind_listeners
    from transship.cli.server import run_worker

    try:
        health = None if health_port is None else bind_listeners([health_host], health_port)
        asyncio.run(run_worker(settings, health, processes=processes))
    except (DatabaseUrlError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
