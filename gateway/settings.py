"""Settings: config.toml (path from GATEWAY_CONFIG) overridden by GATEWAY_* environment variables."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from providers.base import ProviderSettings, RetryPolicy, UpstreamObserver

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def config_path() -> Path:
    """GATEWAY_CONFIG, else ./config.toml, else the config.toml shipped beside the packages."""
    if env := os.environ.get("GATEWAY_CONFIG"):
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else SHIPPED_CONFIG


class Style(BaseModel):
    value: str
    label: str


# The signing secrets, by their setting names (GATEWAY_URL_SIGNING_KEY …).
SecretName = Literal["url_signing_key", "webhook_secret", "stream_token_secret"]
SECRET_NAMES: tuple[SecretName, ...] = ("url_signing_key", "webhook_secret", "stream_token_secret")

# A string option's longest value unless its spec says otherwise.
DEFAULT_OPTION_CHARS = 2000


class OptionSpec(BaseModel):
    """One request option a model accepts: its type, allowed values or range, and default."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    choices: list[str | int | float] | None = None
    min: float | None = None
    max: float | None = None
    default: str | int | float | bool | None = None
    description: str = ""
    max_length: int | None = Field(None, ge=1)
    """A string option's longest value, in characters (None: DEFAULT_OPTION_CHARS)."""


class Pricing(BaseModel):
    """`base + per_second × (duration − base_seconds)` over a declared option (docs/api.md, models)."""

    base: int
    per_second: int = 0
    base_seconds: float = 0
    option: str = "duration"


class ModelConfig(BaseModel):
    provider: str
    kind: Literal["audio", "video", "image"]
    cost: int = Field(ge=0)
    pricing: Pricing | None = None
    styles: list[Style] = []
    options: dict[str, OptionSpec] = {}
    fallbacks: list[str] = []
    upstream: dict[str, Any] = {}
    """Passed to the adapter as `Task.params` (upstream model name, endpoint path …)."""


class AccountConfig(BaseModel):
    """One upstream account of a provider: its own credential, and optionally its own host and cap."""

    name: str = Field(min_length=1, max_length=64)
    credential_env: str | None = None
    base_url: str | None = None
    max_in_flight: int | None = Field(default=None, ge=1)
    """Defaults to the provider's `max_in_flight`."""
    weight: float = Field(default=1.0, gt=0)
    """Jobs go to the account with the fewest in flight per unit of weight."""


DEFAULT_ACCOUNT = "default"


class ProviderConfig(BaseModel):
    adapter: str
    """`module:Class` of the adapter; adding a provider is one module plus this line."""
    base_url: str
    base_url_env: str | None = None
    """An environment variable that, when set, overrides base_url (SUNO_API_URL, COMFYUI_URL)."""
    credential_env: str | None = None
    requires: list[str] = []
    """Environment variables that must be set for the provider to be configured."""
    poll_interval: float = 2.0
    timeout: float = 30.0
    deadline_seconds: float = 900.0
    max_in_flight: int = 8
    passthrough: bool = False
    """Hand out upstream result URLs as they are instead of mirroring them."""
    retry: RetryPolicy = RetryPolicy()
    circuit_failures: int = 5
    circuit_cooldown_seconds: float = 60.0
    extra: dict[str, Any] = {}
    accounts: list[AccountConfig] = []
    """Several upstream accounts; none: one account (`default`) made from the settings above."""
    account_probe_seconds: float = Field(default=30.0, gt=0)
    """A disabled account is tried again after this long, then after twice as long each time (up to
    `account_probe_max_seconds`)."""
    account_probe_max_seconds: float = Field(default=900.0, gt=0)

    @field_validator("accounts", mode="after")
    @classmethod
    def _unique_account_names(cls, accounts: list[AccountConfig]) -> list[AccountConfig]:
        names = [account.name for account in accounts]
        if len(set(names)) != len(names):
            raise ValueError("account names must be unique within a provider")
        return accounts

    def account_list(self) -> list[AccountConfig]:
        """The accounts as configured, or the single account today's settings describe."""
        if self.accounts:
            return self.accounts
        return [AccountConfig(name=DEFAULT_ACCOUNT, credential_env=self.credential_env)]

    @field_validator("extra", mode="after")
    @classmethod
    def _booleans_from_the_environment(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """`GATEWAY_PROVIDERS__X__EXTRA__Y=false` arrives as the string "false", which is truthy: read
        true/false as TOML would. Other strings stay strings (ComfyUI node ids such as "3" are strings)."""
        booleans = {"true": True, "false": False}
        return {
            name: booleans.get(value.strip().lower(), value) if isinstance(value, str) else value
            for name, value in extra.items()
        }


class SimulatorConfig(BaseModel):
    speed: float = Field(default=1.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Path("data")
    database_url: str | None = None
    """Unset: the SQLite file in the data dir. `postgresql://user@host:port/db`: a PostgreSQL store."""
    redis_url: str | None = None
    """Unset: events, rate limits and caps stay in the process (or in PostgreSQL when it is shared)."""
    redis_prefix: str = "gateway:"
    storage_url: str | None = None
    """Unset: the data dir's files folder. `file:///path` or `s3://bucket/prefix`."""
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_seconds: float = Field(default=15.0, gt=0)
    """How long a replica's claim on a job lasts without renewal; another replica takes over after it."""
    admin_token: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    url_signing_key: str | None = None
    webhook_secret: str | None = None
    stream_token_secret: str | None = None
    demo: bool = False
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 2000
    heartbeat_seconds: float = 15.0
    sse_retry_ms: int | None = None
    stream_token_ttl_seconds: int = 3600
    result_ttl_seconds: int = 24 * 3600
    sweep_interval_seconds: float = 300.0
    max_result_bytes: int = 512 * 1024 * 1024
    preview_seconds: float = 2.0
    """At most one live preview frame per job is stored (and announced) in this many seconds."""
    idempotency_ttl_seconds: int = 24 * 3600
    allow_private_callbacks: bool = False
    cors_origins: list[str] = []
    """Origins whose pages may follow `events_url` and fetch signed downloads (`["*"]`: any); none by default."""
    webhook_max_attempts: int = 5
    webhook_backoff_seconds: float = 2.0
    default_rate_limit_per_minute: int = 60
    default_max_concurrent_jobs: int = 10
    max_queued_jobs_per_key: int = Field(default=100, ge=1)
    """Jobs of one key waiting for an upstream slot; one more is refused with 429 too_many_jobs."""
    max_streams_per_key: int = Field(default=100, ge=1)
    """Event streams one API key may hold open on one replica at once (429 `too_many_streams` above)."""
    max_streams: int = Field(default=5000, ge=1)
    """Event streams one replica holds open at once, every key together (429 `too_many_streams` above)."""
    stream_send_timeout_seconds: float = Field(default=30.0, gt=0)
    """A stream whose next write has waited this long is dropped (its client resumes by Last-Event-ID);
    `gateway serve` has the kernel cut a connection that takes no data for twice this long."""
    request_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long `gateway serve` waits for a request's line and headers, from the connection's start or
    the request's first byte; then the connection is closed (408 when part of a request came)."""
    max_connections: int = Field(default=20000, ge=1)
    """Connections `gateway serve` holds open at once; one more is answered 503 `too_many_connections`
    and closed (above `max_streams`: a replica holds its streams and its other requests)."""
    request_body_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long it waits for a request's whole body once its headers came (408, then closed)."""
    shutdown_grace_seconds: float = Field(default=8.0, gt=0)
    """From SIGTERM to exit: creates are refused, streams end, running jobs are handed over."""
    simulator: SimulatorConfig = SimulatorConfig()
    providers: dict[str, ProviderConfig] = {}
    models: dict[str, ModelConfig] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_path()))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gateway.sqlite3"

    @property
    def shared_database(self) -> bool:
        """True on PostgreSQL: several replicas may share it, so jobs are driven under leases."""
        return bool(self.database_url) and not str(self.database_url).startswith("sqlite")

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def secret(self, name: SecretName) -> bytes:
        """A configured secret, or one generated once into the data dir and reused after."""
        configured: str | None = getattr(self, name)
        if configured:
            return configured.encode()
        path = self.data_dir / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()

    def provider_configured(self, name: str) -> bool:
        if self.demo:
            return True
        cfg = self.providers[name]
        if cfg.accounts:
            # Each account brings its own credential (one that has it is enough), and perhaps its own
            # host; what else the provider requires (a host variable such as SUNO_API_URL) still counts.
            others = [var for var in cfg.requires if var != cfg.credential_env]
            hosts = all(account.base_url for account in cfg.accounts) or all(
                os.environ.get(v) for v in others
            )
            return hosts and any(self.account_configured(name, account) for account in cfg.accounts)
        return all(os.environ.get(var) for var in cfg.requires)

    def account_configured(self, name: str, account: AccountConfig) -> bool:
        """An account whose credential variable is named must have it set (demo mode fills it in)."""
        if self.demo or not self.providers[name].accounts:
            return True
        return not account.credential_env or bool(os.environ.get(account.credential_env))

    def provider_settings(
        self,
        name: str,
        observer: UpstreamObserver | None = None,
        account: AccountConfig | None = None,
    ) -> ProviderSettings:
        """The settings an adapter is built with: the provider's, with one account's credential and host."""
        cfg = self.providers[name]
        account = account or cfg.account_list()[0]
        base_url = cfg.base_url
        if cfg.base_url_env and os.environ.get(cfg.base_url_env):
            base_url = os.environ[cfg.base_url_env]
        if account.base_url and not self.demo:  # demo mode points every account at the simulator
            base_url = account.base_url
        api_key = os.environ.get(account.credential_env) if account.credential_env else None
        if self.demo and not api_key:
            api_key = "demo-key"  # the simulator checks that a credential is sent (refusing `invalid`)
        return ProviderSettings(
            name=name,
            base_url=base_url,
            api_key=api_key,
            poll_interval=cfg.poll_interval,
            timeout=cfg.timeout,
            retry=cfg.retry,
            extra=cfg.extra,
            observer=observer,
        )
