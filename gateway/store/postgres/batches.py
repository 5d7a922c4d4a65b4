"""PostgreSQL: frequent small statements of many jobs, sent together as one.

With thousands of streams open, two statements dominated the database and the event loop (py-spy): each
running job's progress event, every second or so, and each quiet stream's look at the log. Each was a
round trip of its own, and a commit for the progress events. SQLite's writer already commits whatever
is queued as one transaction; this does the same for PostgreSQL. While one statement is on its way,
the calls that arrive meanwhile wait, and the next statement carries all of them.

A caller learns its answer only once the statement that carried it has finished (for a write: has
committed), exactly as on its own. A failed statement fails every call it carried; a batch sent as
several statements fails only the calls of the one that failed (`Failed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gateway.store.db import committed
from gateway.store.records import Row

I = TypeVar("I")  # noqa: E741  # a call's input
R = TypeVar("R")  # its answer

# One statement, its parameters: its rows (the engine's statement run with retries on a deadlock).
Run = Callable[[str, Sequence[Any]], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Failed:
    """A call's answer when the statement that carried it failed (the rest of its batch may not have)."""

    error: Exception


class Batches(Generic[I, R]):
    """Calls sent a batch at a time: `send` answers a batch's inputs, in order.

    `one_per` names what a batch may hold only once (a job, for its events' order): a second call for
    it waits for the next batch. `most` caps a batch's size: the rest wait for the next.
    """

    def __init__(
        self,
        send: Callable[[list[I]], Awaitable[Sequence[R | Failed]]],
        one_per: Callable[[I], Hashable] | None = None,
        most: int | None = None,
    ) -> None:
        self._send = send
        self._one_per = one_per
        self._most = most
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0
        """How many batches have been sent (tests read it)."""

    async def __call__(self, item: I) -> R:
        """Shielded: a caller cancelled while its batch is on its way still learns the answer."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._sender is None:  # started on the next turn of the loop: this turn's calls go with it
            self._sender = asyncio.get_running_loop().create_task(self._run())
        return await committed(done)

    async def _run(self) -> None:
        batch: list[tuple[I, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                self.sent += 1
                try:
                    answers = await self._send([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        done.set_exception(exc)
                else:
                    for (_, done), answer in zip(batch, answers, strict=True):
                        if isinstance(answer, Failed):
                            done.set_exception(answer.error)
                        else:
                            done.set_result(answer)
        finally:
            self._sender = None
            for _, done in batch + self._waiting:  # left unanswered only when the sender was cancelled
                if not done.done():
                    done.cancel()

    def _next_batch(self) -> list[tuple[I, asyncio.Future[R]]]:
        batch: list[tuple[I, asyncio.Future[R]]] = []
        later: list[tuple[I, asyncio.Future[R]]] = []
        if self._one_per is None:
            size = len(self._waiting) if self._most is None else self._most
            batch, self._waiting = self._waiting[:size], self._waiting[size:]
            return batch
        seen: set[Hashable] = set()
        for call in self._waiting:
            name = self._one_per(call[0])
            full = self._most is not None and len(batch) >= self._most
            (later if full or name in seen else batch).append(call)
            seen.add(name)
        self._waiting = later
        return batch
