"""Checks made before the server starts, so a bad config or workflow stops it with one clear line."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import redis.asyncio as aioredis
from pydantic import ValidationError

from gateway import store
from gateway.settings import SECRET_NAMES, Settings
from gateway.store import deployment_secrets
from gateway.upstreams.registry import load_adapter


class ConfigError(Exception):
    """A configuration the gateway cannot start with; the message is one sentence for the operator."""


def explain(error: BaseException) -> str | None:
    """One line for an error made while reading the configuration, or None for any other error."""
    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'config'}: {problem['msg']}"
            for problem in error.errors()
        )
        return f"the configuration is not valid: {problems}"
    if isinstance(error, tomllib.TOMLDecodeError):
        return f"the configuration file is not valid TOML: {error}"
    return None


def check_config_file() -> None:
    """GATEWAY_CONFIG names a file that must exist: a typo would otherwise start on no config at all."""
    named = os.environ.get("GATEWAY_CONFIG")
    if named and not Path(named).is_file():
        raise ConfigError(f"GATEWAY_CONFIG names {named}, which is not a file")


async def check(settings: Settings) -> None:
    """Every model's provider exists and every configured adapter can be built (workflows read)."""
    for model_id, model in settings.models.items():
        if model.provider not in settings.providers:
            raise ConfigError(
                f"model {model_id!r} names the provider {model.provider!r}, which is not configured"
            )
    for name, provider in settings.providers.items():
        try:
            adapter_cls = load_adapter(provider.adapter)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"provider {name!r}: its adapter {provider.adapter!r} cannot be loaded ({exc})"
            ) from exc
        if not settings.provider_configured(name):
            continue
        try:  # built once and closed: the constructor reads what it needs (a ComfyUI workflow)
            adapter = adapter_cls(settings.provider_settings(name))
        except (ValueError, OSError, TypeError) as exc:
            raise ConfigError(f"provider {name!r}: {exc}") from exc
        await adapter.aclose()


# How long a start-up waits to reach the database or Redis before it says it cannot.
REACH_SECONDS = 10.0


def _where(url: str) -> str:
    """`host:port` of a service URL, never its user or password."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or '?'}:{port}" if port else (parts.hostname or "?")


def _reason(error: BaseException) -> str:
    return str(error).split("\n")[0] or type(error).__name__


async def reach(settings: Settings) -> None:
    """The shared database and Redis answer (a replica's start): else one line naming the host and port."""
    if settings.shared_database:
        database = store.connect(settings)
        try:
            with anyio.fail_after(REACH_SECONDS):
                await database.open()
        except Exception as exc:  # unreachable, refused, a bad password or database name …
            raise ConfigError(
                f"the database at {_where(str(settings.database_url))} cannot be used: {_reason(exc)}"
            ) from None
        try:  # the first replica records the deployment's secrets; a replica set otherwise stops here
            for name in SECRET_NAMES:
                await deployment_secrets.agree(database, name, getattr(settings, name))
        except deployment_secrets.SecretsDisagree as exc:
            raise ConfigError(str(exc)) from None
        finally:
            await database.close()
    if settings.redis_url:
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=REACH_SECONDS, socket_timeout=REACH_SECONDS
        )
        try:
            await client.ping()
        except Exception as exc:  # a refused connection, a bad password, not Redis at all …
            raise ConfigError(
                f"Redis at {_where(settings.redis_url)} cannot be used: {_reason(exc)}"
            ) from None
        finally:
            await client.aclose()
