"""The provider registry: builds each provider's accounts and routes a model to a provider (fallbacks)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.contract.errors import ProviderUnavailable
from gateway.settings import ProviderConfig, Settings
from gateway.store.records import AccountCap
from gateway.upstreams.accounts import Account, AccountHealth, CallRecord, observing
from gateway.upstreams.capacity import Gate
from gateway.upstreams.circuit import CircuitBreaker
from providers.base import Provider, Sleep, UpstreamObserver

log = logging.getLogger("gateway.registry")


@dataclass
class Upstream:
    """One configured provider: its accounts (each with its own adapter and circuit) and its gate."""

    name: str
    accounts: dict[str, Account]
    gate: Gate
    deadline: float
    passthrough: bool
    base_urls: list[str] = field(default_factory=list)
    """Where the accounts' adapters reach the upstream: results from these hosts are fetched even when
    they are local."""

    @property
    def adapter(self) -> Provider:
        """The adapter of the first account: for what does not depend on a credential (`prepare`)."""
        return next(iter(self.accounts.values())).adapter

    def account(self, name: str | None) -> Account | None:
        """A job's account; a job from before accounts existed (None) ran on the first one."""
        if name is None:
            return next(iter(self.accounts.values()))
        return self.accounts.get(name)

    def open_accounts(self) -> list[AccountCap]:
        """The accounts that may be given a new job now."""
        return [account.cap for account in self.accounts.values() if account.usable]

    @property
    def serving(self) -> bool:
        return any(account.usable for account in self.accounts.values())

    @property
    def capacity(self) -> int:
        return sum(account.limit for account in self.accounts.values() if account.usable)

    @property
    def state(self) -> str:
        """`closed` while an account takes jobs, `half_open` while one is on trial, else `open`."""
        states = {account.state() for account in self.accounts.values()}
        if "active" in states:
            return "closed"
        if states & {"half_open", "probing"}:
            return "half_open"
        return "open"

    def retry_after(self) -> int:
        return min(account.retry_after() for account in self.accounts.values())


@dataclass(frozen=True)
class Route:
    """The model that will serve a request (the requested one, or a fallback) and its upstream."""

    model: str
    upstream: Upstream


def load_adapter(path: str) -> Any:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class Registry:
    def __init__(
        self,
        settings: Settings,
        gate: Callable[[str], Gate],
        *,
        sleep: Sleep | None = None,
        observer: UpstreamObserver | None = None,
    ) -> None:
        self.settings = settings
        self.upstreams: dict[str, Upstream] = {}
        for name, config in settings.providers.items():
            if not settings.provider_configured(name):
                log.info("provider %s is not configured (needs %s)", name, ", ".join(config.requires))
                continue
            accounts = self._accounts(name, config, sleep, observer)
            self.upstreams[name] = Upstream(
                name=name,
                accounts=accounts,
                gate=gate(name),
                deadline=config.deadline_seconds,
                passthrough=config.passthrough,
                base_urls=[account.base_url for account in accounts.values()],
            )

    def _accounts(
        self, name: str, config: ProviderConfig, sleep: Sleep | None, observer: UpstreamObserver | None
    ) -> dict[str, Account]:
        adapter_cls = load_adapter(config.adapter)
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
        accounts: dict[str, Account] = {}
        for account in config.account_list():
            if not self.settings.account_configured(name, account):
                log.info(
                    "%s account %s is not configured (needs %s)", name, account.name, account.credential_env
                )
                continue
            calls = CallRecord()
            adapter_settings = self.settings.provider_settings(name, observing(calls, observer), account)
            accounts[account.name] = Account(
                provider=name,
                name=account.name,
                adapter=adapter_cls(adapter_settings, **kwargs),
                limit=max(1, account.max_in_flight or config.max_in_flight),
                weight=account.weight,
                circuit=CircuitBreaker(config.circuit_failures, config.circuit_cooldown_seconds),
                health=AccountHealth(config.account_probe_seconds, config.account_probe_max_seconds),
                calls=calls,
                base_url=adapter_settings.base_url,
            )
        return accounts

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            for account in upstream.accounts.values():
                await account.adapter.aclose()

    def upstream(self, provider: str) -> Upstream | None:
        return self.upstreams.get(provider)

    def _serving(self, model_id: str) -> Upstream | None:
        upstream = self.upstreams.get(self.settings.models[model_id].provider)
        return upstream if upstream is not None and upstream.serving else None

    def available(self, model_id: str) -> bool:
        return self.route_or_none(model_id) is not None

    def route_or_none(self, model_id: str) -> Route | None:
        for candidate in [model_id, *self.settings.models[model_id].fallbacks]:
            if candidate not in self.settings.models:
                continue
            upstream = self._serving(candidate)
            if upstream is not None:
                return Route(candidate, upstream)
        return None

    def route(self, model_id: str) -> Route:
        """The requested model's provider, or its first healthy fallback; 503 when none serves."""
        found = self.route_or_none(model_id)
        if found is not None:
            return found
        provider = self.settings.models[model_id].provider
        upstream = self.upstreams.get(provider)
        if upstream is None:
            raise ProviderUnavailable(
                f"The provider {provider!r} of model {model_id!r} is not configured on this gateway.",
                provider=provider,
            )
        retry_after = upstream.retry_after()
        raise ProviderUnavailable(
            f"The provider {provider!r} is failing: none of its accounts takes jobs for about"
            f" {retry_after} s, and no fallback model is available.",
            provider=provider,
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )

    def states(self) -> dict[str, str]:
        """Each configured provider's state (as a circuit's), and `unconfigured` for the rest."""
        return {
            name: (self.upstreams[name].state if name in self.upstreams else "unconfigured")
            for name in self.settings.providers
        }
