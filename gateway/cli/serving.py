"""The app under uvicorn, as `gateway serve` and `gateway demo` run it: a drain on SIGTERM, a socket that drops stalled clients."""

from __future__ import annotations

import gc
import math
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from gateway.cli.protocol import protocol_for
from gateway.drain import Drain
from gateway.settings import Settings


class DrainingServer(uvicorn.Server):
    """Uvicorn, beginning the app's drain the moment it is asked to stop (SIGTERM, Ctrl-C).

    Uvicorn then stops listening and waits for open connections; the drain has already refused creates
    and ended the event streams that would otherwise hold it up (see gateway/drain.py).
    """

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.request()
        super().handle_exit(sig, frame)


# Python's cycle collector runs a young collection every 700 new objects and a full one whenever the
# heap has grown by a quarter. With thousands of open streams the heap is millions of objects, so a
# full collection takes about a second and holds the event loop: gc.callbacks put the collector at
# 25 s of the server's 52 s of CPU for 5 000 held streams (22 full collections). Young collections
# every 50 000 new objects (a few MB of garbage at most waiting for them) and the objects of the
# started process set aside (gc.freeze) bring that to 3.7 s of 30 s (2 full collections). Reference
# counting still frees at once everything that is not part of a cycle.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(app: Starlette, settings: Settings, host: str, port: int, log_level: str = "info") -> None:
    tune_gc()
    config = server_config(app, settings, host, port, log_level)
    await DrainingServer(config, app.state.drain).serve(sockets=[listening_socket(config, settings)])


def server_config(
    app: Starlette, settings: Settings, host: str, port: int, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn as `gateway serve` runs it: always its h11 parser, with deadlines for receiving a request
    (gateway/cli/protocol.py), whether or not httptools happens to be installed."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=False,  # gateway.access writes one JSON line per request instead
        backlog=4096,
        http=protocol_for(settings),
        # Requests still running after half the grace are cancelled; the other half is the runner's
        # hand-over and the shutdown (each step bounded by what is left; see the app's lifespan).
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace_seconds / 2)),
    )


def listening_socket(config: uvicorn.Config, settings: Settings) -> socket.socket:
    """Uvicorn's socket, with the kernel told to abort a connection whose client takes no data for twice
    the stream send timeout (TCP_USER_TIMEOUT, inherited by every accepted connection; Linux).

    The app drops a stream whose client stopped reading after the send timeout, but what it had
    written stays queued in the socket (megabytes of kernel buffer on a fast link) and the connection
    stays open until the client reads or closes; this way the kernel lets go of it too.
    """
    sock = config.bind_socket()
    if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        milliseconds = int(settings.stream_send_timeout_seconds * 2000)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)
    return sock
