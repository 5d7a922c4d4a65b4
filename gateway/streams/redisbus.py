"""The Redis engine of the event bus: live events fanned out across replicas over one pub/sub channel."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.store.event_records import Event
from gateway.streams.events import EventHub, Mailbox, OnTerminal

log = logging.getLogger("gateway.redisbus")

# Wire format of one message: origin, job id, seq, terminal flag, then the event's JSON, joined by the
# ASCII unit separator. json.dumps escapes every control character, so the separator never occurs in
# the JSON, and the fields a replica filters on come first: it drops a message for a job nobody
# follows here, or its own echo, without decoding the JSON.
SEP = b"\x1f"
TERMINAL, ONGOING = b"T", b"-"

# Redis gone: retry after 0.1 s, doubling up to 5 s; a message lost meanwhile is found in the log.
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
# A subscription silent this long is pinged; silent for another spell after that, it is dead.
KEEPALIVE_SECONDS = 10.0
# A publish that cannot reach Redis gives up quickly rather than hold up the job that recorded it.
PUBLISH_TIMEOUT = 2.0


def encode_message(instance: bytes, event: Event) -> bytes:
    flag = TERMINAL if event.terminal else ONGOING
    return SEP.join((instance, event.job_id.encode(), str(event.seq).encode(), flag, event.encoded.encode()))


def decode_event(job_id: str, seq: bytes, payload: bytes) -> Event:
    text = payload.decode()
    event = Event(job_id, int(seq), json.loads(text))
    # Seed the cached encoding with the bytes we were sent so the streams never re-encode it.
    event.__dict__["encoded"] = text
    return event


class RedisBus:
    """Fans events out to this replica's listeners directly and to the other replicas over Redis.

    Every replica subscribes to one channel per deployment (`{prefix}events`) from start-up, so a
    follower never races a per-job subscription. Pub/sub is lossy (a replica that is reconnecting
    misses messages), which is why `poll_seconds` is set: followers read the durable log anyway after
    that long without a live event.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        instance_id: str,
        poll_seconds: float | None = 5.0,
        *,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        if SEP.decode() in instance_id:
            raise ValueError("instance_id must not contain the unit separator \\x1f")
        self.poll_seconds = poll_seconds
        self.channel = f"{prefix}events"
        self.keys_channel = f"{prefix}keys"
        self.instance_id = instance_id
        self.keepalive_seconds = keepalive_seconds
        self.connects = 0
        """How many times the subscription has been (re)established; tests and health checks read it."""
        self._instance = instance_id.encode()
        self._hub = EventHub(poll_seconds)
        self._watched: Counter[str] = Counter()
        self._on_terminal: list[OnTerminal] = []
        self._on_key_changed: list[Callable[[str], None]] = []
        self._subscribed = anyio.Event()
        self._closed = False
        self._publish_failing = False
        # One connection each: publishes are serialised on theirs, and a subscribed connection can
        # run nothing but pub/sub commands.
        self._publisher: Redis = Redis.from_url(
            redis_url,
            single_connection_client=True,
            socket_timeout=PUBLISH_TIMEOUT,
            socket_connect_timeout=PUBLISH_TIMEOUT,
            client_name=f"{prefix}pub:{instance_id}",
        )
        # No retries inside redis-py: a lost subscription surfaces in serve(), which logs it and
        # reconnects with backoff, instead of being replayed silently.
        self._subscriber: Redis = Redis.from_url(
            redis_url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=PUBLISH_TIMEOUT,
            client_name=f"{prefix}sub:{instance_id}",
        )

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Mailbox]:
        # Counted here so the subscriber loop can drop messages for unwatched jobs before decoding.
        self._watched[job_id] += 1
        try:
            with self._hub.subscribe(job_id) as live:
                yield live
        finally:
            self._watched[job_id] -= 1
            if self._watched[job_id] <= 0:
                del self._watched[job_id]

    async def publish(self, event: Event) -> None:
        """Deliver to this replica's listeners now, then to the others; never raises for Redis.

        The event is already in the durable log: a replica that misses it reads it from there.
        """
        self._hub.deliver(event)
        try:
            await self._publisher.publish(self.channel, encode_message(self._instance, event))
        except (RedisError, OSError) as error:
            # Once per outage, not once per event: a busy replica publishes hundreds a second.
            if not self._publish_failing:
                log.warning("cannot publish to Redis (%s); other replicas will read the log", error)
            self._publish_failing = True
        else:
            if self._publish_failing:
                log.info("publishing to Redis again")
            self._publish_failing = False

    def on_remote_terminal(self, callback: OnTerminal) -> None:
        self._on_terminal.append(callback)

    async def key_changed(self, key_id: str) -> None:
        try:
            await self._publisher.publish(self.keys_channel, self._instance + SEP + key_id.encode())
        except (RedisError, OSError) as error:  # other replicas see it when their entry expires (1 s)
            log.warning("cannot announce a key change to Redis (%s)", error)

    def on_key_changed(self, callback: Callable[[str], None]) -> None:
        self._on_key_changed.append(callback)

    async def subscribed(self) -> None:
        """Return once the subscription has been established (it may have dropped again since)."""
        await self._subscribed.wait()

    async def serve(self) -> None:
        """Receive the other replicas' events until cancelled, reconnecting whenever Redis goes away."""
        backoff = BACKOFF_MIN
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel, self.keys_channel)
                self.connects += 1
                self._subscribed.set()
                backoff = BACKOFF_MIN
                log.info("subscribed to %s as %s", self.channel, self.instance_id)
                await self._receive(pubsub)
            except (RedisError, OSError) as error:
                if self._closed:
                    return  # closed under us at shutdown: nothing to reconnect for
                log.warning("Redis subscription lost (%s); retrying in %.1f s", error, backoff)
            finally:
                with anyio.CancelScope(shield=True):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8.2
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _receive(self, pubsub: PubSub) -> None:
        pinged = False
        while True:
            asked = anyio.current_time()
            message: dict[str, Any] | None = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=self.keepalive_seconds
            )
            if message is None and anyio.current_time() - asked < self.keepalive_seconds / 2:
                continue  # a subscribe confirmation, passed over: not a silence
            if message is None:
                # A dead peer can leave a socket open and silent: ping, and give up if that goes
                # unanswered too.
                if pinged:
                    raise ConnectionError(f"no answer from Redis for {2 * self.keepalive_seconds:.0f} s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] != "message":
                continue
            if message["channel"] == self.keys_channel.encode():
                self._handle_key_change(message["data"])
            else:
                self._handle(message["data"])

    def _handle(self, raw: bytes) -> None:
        try:
            origin, job, seq, flag, payload = raw.split(SEP, 4)
        except ValueError:
            log.warning("dropping a malformed message on %s", self.channel)
            return
        if origin == self._instance:
            return  # our own listeners had it at publish time
        job_id = job.decode()
        if job_id in self._watched:
            try:
                event = decode_event(job_id, seq, payload)
            except ValueError:
                log.warning("dropping an undecodable event for job %s", job_id)
            else:
                self._hub.deliver(event)
        if flag == TERMINAL:
            for callback in self._on_terminal:
                try:
                    callback(job_id)
                except Exception:
                    log.exception("remote terminal callback failed for job %s", job_id)

    def _handle_key_change(self, raw: bytes) -> None:
        origin, _, key_id = raw.partition(SEP)
        if origin != self._instance:
            for callback in self._on_key_changed:
                callback(key_id.decode())

    async def aclose(self) -> None:
        self._closed = True
        await self._publisher.aclose()
        await self._subscriber.aclose()

    @property
    def listener_count(self) -> int:
        return self._hub.listener_count
