"""Typed settings: defaults, then an optional TOML file, then `TRANSSHIP_*` environment
variables, then command-line overrides (highest)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from transship.identity.secrets import DEFAULT_HASH_COST, require_hash_cost
from transship.storage.location import StorageLocation, parse_storage_url

MiB = 1024 * 1024


def default_data_dir() -> Path:
    """The per-user data directory: `$XDG_DATA_HOME/transship`, else `~/.local/share/transship`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "transship"


class UpstreamHost(BaseModel):
    """How to reach one upstream registry host (like containerd's hosts.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = Field(
        default=None,
        description="base URL to use instead of https://<host> (a mirror, a local stand-in)",
    )
    insecure: bool = Field(default=False, description="allow plain HTTP and skip TLS verification")
    ca_file: Path | None = Field(default=None, description="PEM bundle to trust for this host")
    trusted: bool = Field(
        default=True,
        description=(
            "imports from this upstream may reach its endpoint host even on a private address "
            "(false: the egress policy judges it like any host, e.g. a partner's registry "
            "whose DNS you do not control)"
        ),
    )


class EgressRuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["allow", "deny"]
    target: str = Field(description="a CIDR, an address, or a host name pattern (* wildcards)")

    @field_validator("target")
    @classmethod
    def _target_is_cidr_or_host(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*?.\[\]-]+", value.strip()):  # no ":": a typo'd address
                raise ValueError(f"{value!r} is neither a CIDR nor a host name pattern") from None
        return value.strip()


class EgressSettings(BaseModel):
    """Where imports may connect (see docs/configuration.md, "Egress policy")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Literal["allow", "deny"] = "allow"
    deny_private: bool = Field(
        default=True,
        description=(
            "deny loopback, private, CGNAT, ULA and other non-public ranges unless a rule or "
            "an [upstreams] entry allows them"
        ),
    )
    rules: tuple[EgressRuleSettings, ...] = ()


class WebhookEgressSettings(EgressSettings):
    """Where webhook deliveries may connect. Unlike imports, loopback and private ranges are
    denied unless a rule allows them, also when the table gives only rules."""

    deny_private: bool = Field(default=True, description="deny loopback and private ranges")


class WebhookSettings(BaseModel):
    """How webhook deliveries are made (see docs/configuration.md, "Webhooks")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Deliveries go to URLs any registry contributor chooses: loopback and private ranges
    # are refused unless a rule allows them, whatever the imports' policy says.
    egress: WebhookEgressSettings = Field(
        default_factory=WebhookEgressSettings,
        description="where deliveries may connect (private ranges denied by default)",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="per delivery attempt")
    max_attempts: int = Field(default=6, gt=0, description="tries before a delivery fails")
    retry_initial_seconds: float = Field(
        default=10.0, gt=0, description="wait after the first failure, doubling each time"
    )
    retry_max_seconds: float = Field(default=3600.0, gt=0, description="longest wait")
    concurrency: int = Field(default=8, gt=0, description="deliveries in flight per process")
    poll_seconds: float = Field(
        default=1.0, gt=0, description="how often the outbox is checked for new events"
    )
    max_pending_per_webhook: int = Field(
        default=1000, gt=0, description="undelivered events kept per webhook; older dropped"
    )
    log_max_age_days: float = Field(default=30.0, gt=0, description="delivery log retention")
    log_max_per_webhook: int = Field(
        default=1000, gt=0, description="finished deliveries kept per webhook"
    )
    response_body_bytes: int = Field(
        default=4096, ge=0, description="bytes of a response body kept in the log"
    )
    max_per_registry: int = Field(default=500, gt=0, description="webhooks per registry (ACR)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRANSSHIP_", extra="forbid", frozen=True)

    hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.1", "::1"), description="addresses to listen on"
    )
    port: int = Field(default=5000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    storage_url: str | None = Field(
        default=None,
        description=(
            "where blobs live: absent for the filesystem under data_dir, file:///path, "
            "s3://bucket/prefix?endpoint=…&region=…, or azure://account/container/prefix"
            "?endpoint=…; credentials come from the store's usual environment variables"
        ),
    )
    storage_redirect_seconds: int = Field(
        default=0,
        ge=0,
        le=7 * 24 * 3600,
        description=(
            "answer an authorized blob GET with a 307 to a signed URL valid this long "
            "(object stores only); 0 streams blobs through the registry"
        ),
    )
    database_url: str | None = Field(
        default=None,
        description="postgresql://… or sqlite:///…; default: SQLite in the data directory",
    )
    default_registry: str = Field(
        default="default", description="registry that serves unknown Host headers"
    )
    max_manifest_bytes: int = Field(default=4 * MiB, gt=0)
    upload_expiry_seconds: int = Field(
        default=24 * 3600, gt=0, description="idle upload sessions expire after this"
    )
    gc_interval_seconds: int = Field(
        default=3600, ge=0, description="periodic garbage collection; 0 disables it"
    )
    gc_grace_seconds: int = Field(
        default=3600, ge=0, description="content younger than this is never collected"
    )
    durable_writes: bool = Field(
        default=True, description="fsync blobs and directories before committing them"
    )
    tags_page_max: int = Field(
        default=10000, gt=0, description="upper bound on n for tag and catalog listings"
    )
    portal_session_ttl_seconds: int = Field(
        default=8 * 3600, gt=0, description="how long a web portal session lasts after sign-in"
    )
    log_level: str = "INFO"
    login_server_suffix: str | None = Field(
        default=None,
        description="registries get login servers <name>.<suffix>; default localhost:<port>",
    )
    service_key_file: Path | None = Field(
        default=None, description="key encrypting secrets at rest; default <data_dir>/service.key"
    )
    import_workers: int = Field(default=4, gt=0, description="imports run at once per process")
    background_work: bool = Field(
        default=True,
        description=(
            "serve also runs the background work (imports, GC and upload expiry, webhook "
            "deliveries); false: HTTP only, the work left to `transship worker` processes"
        ),
    )
    http_workers: int = Field(
        default=1,
        gt=0,
        le=256,
        description="HTTP processes `serve` runs on the same port (one machine, every core)",
    )
    import_blob_concurrency: int = Field(
        default=4, gt=0, description="blobs fetched at once per import"
    )
    import_max_manifests: int = Field(
        default=500, gt=0, description="manifests one import may copy (ACR: 50)"
    )
    import_max_bytes: int = Field(
        default=1 << 40, gt=0, description="blob bytes one import may copy"
    )
    max_index_depth: int = Field(
        default=8, gt=0, description="nesting of indexes an import follows"
    )
    import_max_referrers: int = Field(
        default=100, gt=0, description="referrers one import with includeReferrers may copy"
    )
    import_max_referrer_depth: int = Field(
        default=4, gt=0, description="levels of referrers of referrers an import follows"
    )
    max_index_children: int = Field(
        default=1000, gt=0, description="manifests one index may list (push and import)"
    )
    import_max_running_per_registry: int = Field(
        default=4, gt=0, description="imports running at once into one registry, service-wide"
    )
    import_max_running: int = Field(
        default=16, gt=0, description="imports running at once, service-wide"
    )
    sync_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often a process looks for sync rules that are due (a run asked "
        "for in the process itself starts at once)",
    )
    sync_max_running: int = Field(
        default=2, gt=0, description="sync rules one process runs at once"
    )
    sync_run_history: int = Field(
        default=20, gt=0, description="runs kept per sync rule (older ones are deleted)"
    )
    sync_lease_seconds: int = Field(
        default=60,
        ge=5,
        description="a sync rule whose process stopped renewing its claim is run by another "
        "after this",
    )
    sync_head_concurrency: int = Field(
        default=8, gt=0, description="manifest HEAD requests at once per sync run"
    )
    sync_tag_page_size: int = Field(
        default=1000, gt=0, description="tags asked for per page of an upstream tag list"
    )
    sync_min_interval_seconds: int = Field(
        default=60, gt=0, description="the shortest schedule (intervalSeconds) a sync rule may have"
    )
    max_blob_bytes: int | None = Field(
        default=None,
        gt=0,
        description="largest blob a push may upload (413 beyond); none by default",
    )
    max_request_body_bytes: int = Field(
        default=1 << 20, gt=0, description="JSON bodies of the management API"
    )
    http_header_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description=(
            "from connection open (or the previous response) to the end of the request headers"
        ),
    )
    http_body_idle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="no byte of a request body for this long closes the connection",
    )
    http_keepalive_timeout_seconds: float = Field(
        default=15.0, gt=0, description="idle keep-alive connections are closed after this"
    )
    http_max_connections_per_client: int = Field(
        default=256,
        gt=0,
        description="concurrent connections from one client address; more are closed at once",
    )
    upstream_max_header_bytes: int = Field(
        default=16384, gt=0, description="largest upstream response header line"
    )
    import_lease_seconds: float = Field(
        default=15.0, gt=0, description="a crashed process's jobs resume after this"
    )
    loop_unready_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "/readyz answers 503 while a background loop has been crashing and restarting "
            "for this long"
        ),
    )
    upstream_retry_attempts: int = Field(default=5, gt=0, description="tries per upstream request")
    cache_tag_ttl_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "a tag pulled through a cache rule is re-checked upstream (one HEAD) when a pull "
            "finds it older than this; 0 re-checks on every pull"
        ),
    )
    upstream_read_timeout: float = Field(
        default=30.0, gt=0, description="seconds without data before a retry"
    )
    upstream_rate_limit_budgets: bool = Field(
        default=True,
        description=(
            "keep one rate-limit budget per upstream host and credential user, shared by "
            "every process, from the upstreams' ratelimit-* headers and 429s (false: 429s "
            "are retried like other transient statuses)"
        ),
    )
    upstream_rate_limit_max_wait: float = Field(
        default=21600.0,
        ge=0,
        description=(
            "longest an import waits for an upstream's rate-limit budget, in seconds; a "
            "longer wait fails it with UpstreamRateLimited"
        ),
    )
    upstream_rate_limit_recheck: float = Field(
        default=5.0,
        gt=0,
        description="seconds between a waiting import's looks at its rate-limit budget",
    )
    egress: EgressSettings = Field(default_factory=EgressSettings)
    egress_registries: dict[str, EgressSettings] = Field(
        default_factory=dict,
        description="per-registry egress policies (by registry name) replacing `egress`",
    )
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    upstreams: dict[str, UpstreamHost] = Field(
        default_factory=dict,
        description="per-host endpoint overrides for imports, keyed by host[:port]",
    )
    data_plane_auth: bool = Field(
        default=True,
        description=(
            "require credentials on /v2 and /acr/v1 (false: anyone may push and pull; "
            "an isolated test network only)"
        ),
    )
    management_audiences: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("https://management.core.windows.net/", "https://management.azure.com/"),
        description="token audiences the management API accepts besides its own URL",
    )
    credential_hash_workers: int = Field(
        default=2,
        gt=0,
        description="threads hashing secrets and passwords (scrypt), apart from file work",
    )
    credential_hash_max_waiting: int = Field(
        default=64,
        ge=0,
        description="credential checks waiting for a hashing thread; more are refused (429)",
    )
    credential_hash_cost: int = Field(
        default=DEFAULT_HASH_COST,
        description=(
            "scrypt's cost N for new secret and password hashes: a power of two from 1024 to "
            "1048576, each hash taking N KiB of memory; every hash records its own, so "
            "stored ones keep verifying after a change (below the default: test machines only)"
        ),
    )
    auth_failure_limit_per_client: int = Field(
        default=20, gt=0, description="failed sign-ins per client address per window before 429"
    )
    auth_failure_limit_per_principal: int = Field(
        default=50,
        gt=0,
        description="failed sign-ins per user name or client id per window before 429",
    )
    auth_failure_window_seconds: float = Field(
        default=60.0, gt=0, description="the sliding window failed sign-ins are counted over"
    )
    tls: bool = Field(default=False, description="serve HTTPS with a local CA in <data_dir>/tls")
    tls_certificate: Path | None = Field(
        default=None, description="PEM certificate (chain) to serve HTTPS with; needs tls_key"
    )
    tls_key: Path | None = Field(
        default=None, description="unencrypted PEM key of tls_certificate; needs tls_certificate"
    )
    tls_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra names and addresses for the local CA's certificate"
    )
    metrics_access: Literal["public", "loopback", "token", "off"] = Field(
        default="loopback",
        description=(
            "who may read /metrics: everyone, loopback clients, bearers of "
            "metrics_token_file's token, or nobody (404)"
        ),
    )
    metrics_token_file: Path | None = Field(
        default=None,
        description="file holding the bearer token /metrics wants when metrics_access is token",
    )

    @field_validator("hosts", "management_audiences", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    @field_validator("credential_hash_cost")
    @classmethod
    def _power_of_two_cost(cls, value: int) -> int:
        return require_hash_cost(value)

    @field_validator("tls_hosts", mode="before")
    @classmethod
    def _split_tls_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("storage_url", mode="after")
    @classmethod
    def _parse_storage_url(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            # Raises StorageUrlError (a ValueError) naming storage_url and what is wrong,
            # never quoting a query value.
            parse_storage_url(value)
            return value.strip()
        return None

    @property
    def storage_location(self) -> StorageLocation | None:
        """The parsed `storage_url`; None for the filesystem under `data_dir`."""
        return parse_storage_url(self.storage_url) if self.storage_url else None

    @model_validator(mode="after")
    def _tls_certificate_and_key_together(self) -> Settings:
        if self.tls_certificate is not None and self.tls_key is None:
            raise ValueError("tls_key is missing: the certificate needs it (--tls-key)")
        if self.tls_key is not None and self.tls_certificate is None:
            raise ValueError("tls_certificate is missing: the key needs it (--tls-cert)")
        return self

    @model_validator(mode="after")
    def _metrics_token_file_for_token_access(self) -> Settings:
        if self.metrics_access == "token" and self.metrics_token_file is None:
            raise ValueError("metrics_token_file is missing: metrics_access 'token' needs it")
        return self

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def effective_login_server_suffix(self) -> str:
        return self.login_server_suffix or f"localhost:{self.port}"

    @property
    def owner_credential_file(self) -> Path:
        """The owner service principal's credential, written (mode 0600) at first start."""
        return self.data_dir / "owner-credential.json"

    @property
    def effective_service_key_file(self) -> Path:
        return self.service_key_file or self.data_dir / "service.key"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'metadata.db'}"

    @property
    def tls_enabled(self) -> bool:
        """HTTPS: with the local CA (`tls`) or with a given certificate."""
        return self.tls or self.tls_certificate is not None

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("TRANSSHIP_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
