"""The services a request handler may use (Services), built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.drain import Drain
from gateway.jobs.catalog import Catalog
from gateway.jobs.runner import Runner
from gateway.limits.keycache import KeyCache
from gateway.metrics import Metrics
from gateway.results.callbacks import Resolve, system_resolve
from gateway.results.files import ResultStore
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.streams.events import EventBus
from gateway.streams.keystreams import RevokedKeyStreams
from gateway.streams.openstreams import OpenStreams
from gateway.upstreams.registry import Registry


@dataclass
class Services:
    """Everything a request handler may use; built once by the app's lifespan."""

    settings: Settings
    db: Database
    bus: EventBus
    catalog: Catalog
    registry: Registry
    results: ResultStore
    runner: Runner
    stream_secret: bytes
    metrics: Metrics
    keys: KeyCache
    key_streams: RevokedKeyStreams
    drain: Drain
    streams: OpenStreams
    resolve: Resolve = system_resolve
    """How callback hosts are resolved (tests inject their own names)."""
