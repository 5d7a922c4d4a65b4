"""What the simulator remembers beyond a task id: submitted requests, cancellations, deletions."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio

from providers.simulator.timeline import parse_task_id

log = logging.getLogger("providers.simulator")

STATE_FILE = "simulator.json"
KEEP_MS = 2 * 24 * 3600 * 1000
"""Records older than this are dropped when the file is next written."""

Record = dict[str, Any]


class Store:
    """In memory, and mirrored to `state_dir/simulator.json` when given so a restart keeps it.

    A task's state never lives here: it is computed from its id and the clock. This only holds what
    the id cannot: the request as submitted (echoed back by some protocols) and user actions.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / STATE_FILE if state_dir else None
        self._tasks: dict[str, Record] = {}
        self._cancelled: dict[str, int] = {}
        self._deleted: set[str] = set()
        self._throttled: set[str] = set()
        self._loaded = False
        self._lock = anyio.Lock()

    async def open(self) -> None:
        """Read the state file once, before the first request is answered."""
        if self._loaded:
            return
        async with self._lock:
            if self._loaded:
                return
            if self.path is not None:
                path = anyio.Path(self.path)
                if await path.exists():
                    self._restore(await path.read_text())
            self._loaded = True

    def _restore(self, text: str) -> None:
        try:
            data = json.loads(text)
            self._tasks = {str(k): dict(v) for k, v in data.get("tasks", {}).items()}
            self._cancelled = {str(k): int(v) for k, v in data.get("cancelled", {}).items()}
            self._deleted = {str(k) for k in data.get("deleted", [])}
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("simulator state file %s is unreadable, starting afresh: %s", self.path, exc)

    async def _save(self, now_ms: int) -> None:
        if self.path is None:
            return
        path = self.path
        async with self._lock:  # the snapshot is taken inside the lock so writes land in order
            self._forget_before(now_ms - KEEP_MS)
            text = json.dumps(
                {"tasks": self._tasks, "cancelled": self._cancelled, "deleted": sorted(self._deleted)},
                separators=(",", ":"),
            )
            await anyio.to_thread.run_sync(_write_atomically, path, text)

    def _forget_before(self, cutoff_ms: int) -> None:
        def old(task_id: str) -> bool:
            parsed = parse_task_id(task_id)
            return parsed is None or parsed.created_ms < cutoff_ms

        self._tasks = {k: v for k, v in self._tasks.items() if not old(k)}
        self._cancelled = {k: v for k, v in self._cancelled.items() if not old(k)}
        self._deleted = {k for k in self._deleted if not old(k)}

    # --- tasks -----------------------------------------------------------------------------

    def record(self, task_id: str) -> Record | None:
        return self._tasks.get(task_id)

    def records(self, protocol: str) -> list[tuple[str, Record]]:
        """Every remembered task of one protocol, oldest first."""
        return sorted(
            ((k, v) for k, v in self._tasks.items() if v.get("protocol") == protocol),
            key=lambda item: item[0],
        )

    async def remember(self, task_ids: list[str], protocol: str, now_ms: int, **fields: Any) -> None:
        for task_id in task_ids:
            self._tasks[task_id] = {"protocol": protocol, **fields}
        await self._save(now_ms)

    # --- user actions ----------------------------------------------------------------------

    def cancelled_at(self, task_id: str) -> int | None:
        return self._cancelled.get(task_id)

    async def cancel(self, task_id: str, now_ms: int) -> None:
        self._cancelled.setdefault(task_id, now_ms)
        await self._save(now_ms)

    def is_deleted(self, task_id: str) -> bool:
        return task_id in self._deleted

    async def delete(self, task_id: str, now_ms: int) -> None:
        self._deleted.add(task_id)
        await self._save(now_ms)

    def first_submit(self, key: str) -> bool:
        """True the first time `key` is seen (in memory only): how `sim:429` refuses exactly once."""
        if key in self._throttled:
            return False
        self._throttled.add(key)
        return True


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
