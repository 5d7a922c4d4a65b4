"""PostgreSQL: the calls that wait on one shared row lock, many in one statement and one commit.

A create holds its key's row, and a slot take its provider's lock row, from its first statement to
its commit, so one key's creates, and one provider's takes, take turns, each turn including a commit's
flush of the write-ahead log (py-spy and pg_stat_activity: a burst of creates waited on each other one
commit at a time, and then their drivers' slot takes did). Here the calls that arrive while one
statement is on its way go together in the next (see postgres/batches.py): `create_jobs` and `take_slots`
run `create_job` and `take_slot` (postgres/functions.py) for each, in turn, and the batch commits once.

Each call gets exactly the answer it would have had alone (created, replayed, refused; a slot or a
place in the queue), and learns it only once its batch has committed. A batch is sent sorted by the
row it locks (the key; for the takes, which lock their providers' rows first, the job), so that
replicas, lease renewals and progress writes lock rows in one order and never deadlock; one key's
creates keep their order (a take's place depends on the queue, not on its turn in the batch). A
statement that fails fails every call it carried, and none of them is written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from gateway.store.postgres.batches import Batches, Run
from gateway.store.records import Row

# At most this many calls in one statement: each create counts its key's jobs still waiting for a
# slot, and each take the jobs ahead of it, and a batch's own jobs are among them, so a batch's cost
# grows with its square (a batch of about a thousand creates held its key's row for 2.6 s). Fifty
# creates take about 75 ms.
MOST_PER_STATEMENT = 50

Arguments = Sequence[Any]


class Calls:
    """One stored function's calls, batched: `function` takes a JSON array of argument arrays and
    returns, for each, a row numbered `idx` (its place in the array, from 1) and `columns`."""

    def __init__(self, run: Run, function: str, columns: str, order: Callable[[Arguments], Any]) -> None:
        self._run = run
        self._statement = f"SELECT idx, {columns} FROM {function}($1::jsonb)"
        self._order = order
        self.batches: Batches[Arguments, Row] = Batches(self._send, most=MOST_PER_STATEMENT)

    async def __call__(self, arguments: Arguments) -> Row:
        """The function's row for these arguments, once its batch has committed."""
        return await self.batches(arguments)

    async def _send(self, calls: list[Arguments]) -> list[Row]:
        order = sorted(range(len(calls)), key=lambda i: self._order(calls[i]))
        rows = await self._run(self._statement, [json.dumps([list(calls[i]) for i in order])])
        placed = {int(row["idx"]): row for row in rows}
        answers: list[Row] = [None] * len(calls)
        for place, i in enumerate(order, start=1):
            answers[i] = placed[place]
        return answers


def creates(run: Run) -> Calls:
    """create_job's calls (its arguments: id, key, …): a key's creates in the order they came."""
    return Calls(run, "create_jobs", "outcome, balance_now, job", order=lambda a: a[1])


def slot_takes(run: Run) -> Calls:
    """take_slot's calls (its arguments: job, epoch, provider, …): by job, the order every statement
    locks jobs in (take_slots locks the shared rows of every provider first)."""
    return Calls(run, "take_slots", "slot_place, slot_account", order=lambda a: a[0])


# A key's rate window counted by several requests at once: one row, however many requests.
_COUNT_WINDOWS = (
    "INSERT INTO rate_windows (key_id, window_start, count)"
    " SELECT k, w, n FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS t(k, w, n) ORDER BY k, w"
    " ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_windows.count + excluded.count"
    " RETURNING key_id, window_start, count"
)

Window = tuple[str, int]
"""A key's id and the start of one of its rate windows."""


class WindowCounts:
    """Requests counted in their keys' rate windows, the counts of one turn in one statement.

    Every create of a key counts in the same row, and a row's count waits for the last one's commit
    (5 000 creates of one key spent 19.5 s in that line, pg auto_explain). Each request still gets a
    count of its own, as if counted alone, in the order the requests came."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.batches: Batches[Window, int] = Batches(self._send)

    async def __call__(self, key_id: str, window_start: int) -> int:
        """The window's count with this request in it, once it is committed."""
        return await self.batches((key_id, window_start))

    async def _send(self, requests: list[Window]) -> list[int]:
        added = Counter(requests)
        windows = sorted(added)
        rows = await self._run(
            _COUNT_WINDOWS,
            [[key for key, _ in windows], [start for _, start in windows], [added[w] for w in windows]],
        )
        counts = {(row["key_id"], int(row["window_start"])): int(row["count"]) for row in rows}
        turn: Counter[Window] = Counter()
        answers = []
        for window in requests:  # the window's count before this statement, then one each
            turn[window] += 1
            answers.append(counts[window] - added[window] + turn[window])
        return answers
