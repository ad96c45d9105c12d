"""Where blobs live: the `storage_url` setting, parsed, and the store it names opened.

- absent: the filesystem under the data directory (the default; zero-copy sendfile);
- `file:///path`: the filesystem under `/path` (`blobs/` and `uploads/`);
- `s3://bucket/prefix?endpoint=http://host:port&region=…`: an S3-compatible bucket;
- `azure://account/container/prefix?endpoint=…`: an Azure Blob storage container.

Credentials never appear in the URL: each ecosystem's usual environment variables are read
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, else the AWS_PROFILE's
static keys or credential_process in ~/.aws/credentials or ~/.aws/config, see
`aws_profiles`…; AZURE_STORAGE_ACCOUNT_KEY,
AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING…). Errors name the setting and
the offending part, never a credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from obstore.store import AzureStore, S3Store

from transship.storage.aws_profiles import ProfileError, credential_process, static_keys
from transship.storage.base import StorageError
from transship.storage.object_store import ObjectBlobStore
from transship.storage.objects import ObstoreDriver

SETTING = "storage_url"
_S3_QUERY = {"endpoint", "region"}
_AZURE_QUERY = {"endpoint"}
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")


class StorageUrlError(ValueError):
    """`storage_url` is malformed; the message names the setting and what is wrong."""


class StorageConnectError(StorageError):
    """The store `storage_url` names cannot be opened or reached."""


@dataclass(frozen=True, slots=True)
class StorageLocation:
    """A parsed `storage_url`. `bucket` is the S3 bucket or Azure container; `account` is
    Azure's storage account; `path` is the filesystem root."""

    kind: Literal["file", "s3", "azure"]
    path: Path | None = None
    bucket: str = ""
    account: str = ""
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    def describe(self) -> str:
        """A loggable description (no credential can be in it)."""
        if self.kind == "file":
            return f"file://{self.path}"
        root = f"{self.account}/{self.bucket}" if self.kind == "azure" else self.bucket
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"{self.kind}://{root}/{self.prefix}{where}"


def parse_storage_url(url: str) -> StorageLocation:
    """Parse a `storage_url`. Raises StorageUrlError naming the problem; the message quotes
    no query values (a pasted SAS token must not reach a log)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None:
        raise StorageUrlError(
            f"{SETTING}: credentials do not belong in the URL; use the store's environment "
            "variables (see docs/configuration.md)"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StorageUrlError(f"{SETTING}: a file URL is file:///absolute/path")
        if query:
            raise StorageUrlError(f"{SETTING}: a file URL takes no query parameters")
        return StorageLocation("file", path=Path(parts.path))
    if scheme == "s3":
        _known_query(query, _S3_QUERY)
        bucket = parts.hostname or ""
        if not _BUCKET.fullmatch(bucket):
            raise StorageUrlError(
                f"{SETTING}: {bucket!r} is not an S3 bucket name (s3://bucket/prefix)"
            )
        return StorageLocation(
            "s3",
            bucket=bucket,
            prefix=_prefix(parts.path),
            endpoint=_endpoint(query.get("endpoint")),
            region=query.get("region") or None,
        )
    if scheme == "azure":
        _known_query(query, _AZURE_QUERY)
        account = parts.hostname or ""
        if not _ACCOUNT.fullmatch(account):
            raise StorageUrlError(
                f"{SETTING}: {account!r} is not an Azure storage account name "
                "(azure://account/container/prefix)"
            )
        container, _, rest = parts.path.lstrip("/").partition("/")
        if not _CONTAINER.fullmatch(container):
            raise StorageUrlError(
                f"{SETTING}: {container!r} is not an Azure container name "
                "(azure://account/container/prefix)"
            )
        return StorageLocation(
            "azure",
            account=account,
            bucket=container,
            prefix=_prefix(rest),
            endpoint=_endpoint(query.get("endpoint")),
        )
    raise StorageUrlError(
        f"{SETTING}: unsupported scheme {parts.scheme!r} (file://, s3:// or azure://)"
    )


def _known_query(query: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise StorageUrlError(
            f"{SETTING}: unknown query parameter(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))}; credentials go in environment variables)"
        )


def _prefix(path: str) -> str:
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise StorageUrlError(f"{SETTING}: the prefix may not contain '.' or '..' segments")
    return "/".join(segments)


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    endpoint = urlsplit(value)
    if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
        raise StorageUrlError(f"{SETTING}: endpoint must be an http:// or https:// URL")
    if endpoint.username or endpoint.password or endpoint.query:
        raise StorageUrlError(f"{SETTING}: endpoint takes no credentials or query")
    return value.rstrip("/")


def open_object_store(
    location: StorageLocation, environ: Mapping[str, str], *, part_bytes: int | None = None
) -> ObjectBlobStore:
    """The object-store BlobStore for an `s3` or `azure` location, with credentials from
    `environ`. Raises StorageConnectError when the client cannot be configured (the message
    names no credential). Reaching the store is checked by `probe_object_store`."""
    try:
        if location.kind == "s3":
            driver = ObstoreDriver(_s3_store(location, environ))
        elif location.kind == "azure":
            driver = ObstoreDriver(_azure_store(location, environ))
        else:
            raise StorageConnectError(f"{SETTING}: {location.kind} is not an object store")
    except StorageError:
        raise
    except Exception as exc:
        raise StorageConnectError(
            f"{SETTING}: cannot configure the {location.kind} client: {type(exc).__name__}"
        ) from None
    if part_bytes is None:
        return ObjectBlobStore(driver)
    return ObjectBlobStore(driver, part_bytes=part_bytes)


async def probe_object_store(store: ObjectBlobStore, location: StorageLocation) -> None:
    """List the store once, so a wrong bucket, endpoint or credential stops startup.
    Raises StorageConnectError naming `storage_url` and the store (not its credentials)."""
    try:
        await store.probe()
    except StorageError as exc:
        raise StorageConnectError(f"{SETTING}: cannot reach {location.describe()}: {exc}") from None


def _s3_store(location: StorageLocation, environ: Mapping[str, str]) -> S3Store:
    config: dict[str, str] = {}
    for key, name in (
        ("access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("session_token", "AWS_SESSION_TOKEN"),
    ):
        if environ.get(name):
            config[key] = environ[name]
    provider = None
    if "access_key_id" not in config:
        # The environment wins; then the shared files, as the AWS CLI reads them.
        try:
            config.update(static_keys(environ))
            if "access_key_id" not in config:
                provider = credential_process(environ)
        except ProfileError as exc:
            raise StorageConnectError(f"{SETTING}: {exc}") from None
    region = location.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    config["region"] = region or "us-east-1"
    client: dict[str, str | bool] = {}
    if location.endpoint is not None:
        config["endpoint"] = location.endpoint
        # Self-hosted S3 (SeaweedFS, MinIO…) serves buckets by path, not by host name.
        config["virtual_hosted_style_request"] = "false"
        client["allow_http"] = location.endpoint.startswith("http://")
    return S3Store(
        location.bucket,
        prefix=location.prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        credential_provider=provider,
    )


def _connection_string(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in value.split(";"):
        name, sep, content = item.partition("=")
        if sep:
            fields[name.strip()] = content.strip()
    return fields


def _azure_store(location: StorageLocation, environ: Mapping[str, str]) -> AzureStore:
    config: dict[str, str] = {"account_name": location.account}
    connection = _connection_string(environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    key = environ.get("AZURE_STORAGE_ACCOUNT_KEY") or environ.get("AZURE_STORAGE_KEY")
    key = key or connection.get("AccountKey")
    sas = environ.get("AZURE_STORAGE_SAS_TOKEN") or connection.get("SharedAccessSignature")
    if key:
        config["account_key"] = key
    elif sas:
        config["sas_key"] = sas.lstrip("?")
    endpoint = location.endpoint or connection.get("BlobEndpoint")
    client: dict[str, str | bool] = {}
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
        client["allow_http"] = endpoint.startswith("http://")
    return AzureStore(
        location.bucket,
        prefix=location.prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
    )
