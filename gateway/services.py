"""The services a request handler may use (Services), built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.callbacks import Resolve, system_resolve
from gateway.catalog import Catalog
from gateway.drain import Drain
from gateway.events import EventBus
from gateway.files import ResultStore
from gateway.keycache import KeyCache
from gateway.keystreams import RevokedKeyStreams
from gateway.metrics import Metrics
from gateway.openstreams import OpenStreams
from gateway.registry import Registry
from gateway.runner import Runner
from gateway.settings import Settings
from gateway.store.db import Database


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
