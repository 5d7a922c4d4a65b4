"""The provider registry: builds the configured adapters and routes a model to one (circuits, fallbacks)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.capacity import CapacityGate, Gate
from gateway.circuit import CircuitBreaker
from gateway.errors import ProviderUnavailable
from gateway.settings import Settings
from providers.base import Provider, Sleep, UpstreamObserver

log = logging.getLogger("gateway.registry")


@dataclass
class Upstream:
    """One configured provider with its gate and circuit."""

    name: str
    adapter: Provider
    gate: Gate
    circuit: CircuitBreaker
    deadline: float
    passthrough: bool
    base_url: str = ""
    """Where the adapter reaches the upstream: results from this host are fetched even when it is local."""


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
        *,
        sleep: Sleep | None = None,
        observer: UpstreamObserver | None = None,
        gate: Callable[[str, int], Gate] | None = None,
    ) -> None:
        make_gate = gate or (lambda _name, limit: CapacityGate(limit))
        self.settings = settings
        self.upstreams: dict[str, Upstream] = {}
        for name, config in settings.providers.items():
            if not settings.provider_configured(name):
                log.info("provider %s is not configured (needs %s)", name, ", ".join(config.requires))
                continue
            adapter_cls = load_adapter(config.adapter)
            kwargs: dict[str, Any] = {"sleep": sleep} if sleep else {}
            provider_settings = settings.provider_settings(name, observer)
            self.upstreams[name] = Upstream(
                name=name,
                adapter=adapter_cls(provider_settings, **kwargs),
                gate=make_gate(name, config.max_in_flight),
                circuit=CircuitBreaker(config.circuit_failures, config.circuit_cooldown_seconds),
                deadline=config.deadline_seconds,
                passthrough=config.passthrough,
                base_url=provider_settings.base_url,
            )

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.adapter.aclose()

    def upstream(self, provider: str) -> Upstream | None:
        return self.upstreams.get(provider)

    def _serving(self, model_id: str) -> Upstream | None:
        upstream = self.upstreams.get(self.settings.models[model_id].provider)
        return upstream if upstream is not None and upstream.circuit.allows() else None

    def available(self, model_id: str) -> bool:
        return self._route_or_none(model_id) is not None

    def _route_or_none(self, model_id: str) -> Route | None:
        for candidate in [model_id, *self.settings.models[model_id].fallbacks]:
            if candidate not in self.settings.models:
                continue
            upstream = self._serving(candidate)
            if upstream is not None:
                return Route(candidate, upstream)
        return None

    def route(self, model_id: str) -> Route:
        """The requested model's provider, or its first healthy fallback; 503 when none serves."""
        found = self._route_or_none(model_id)
        if found is not None:
            return found
        provider = self.settings.models[model_id].provider
        upstream = self.upstreams.get(provider)
        if upstream is None:
            raise ProviderUnavailable(
                f"The provider {provider!r} of model {model_id!r} is not configured on this gateway.",
                provider=provider,
            )
        retry_after = upstream.circuit.retry_after()
        raise ProviderUnavailable(
            f"The provider {provider!r} is failing; its circuit is open for about {retry_after} s"
            " and no fallback model is available.",
            provider=provider,
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )

    def states(self) -> dict[str, str]:
        """Each configured provider's circuit state, and `unconfigured` for the rest."""
        return {
            name: (self.upstreams[name].circuit.state if name in self.upstreams else "unconfigured")
            for name in self.settings.providers
        }
