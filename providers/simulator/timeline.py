"""Time-derived task ids, prompt directives, and the clock that turns a task's age into its upstream state."""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

SLOWDOWN = 10.0
"""How much longer a `sim:slow` task takes."""

FAIL_AT = 0.5
"""The share of its timeline after which a `sim:fail` task fails: always after some progress."""

DONE = "done"
FAILED = "failed"


class Flag(enum.IntFlag):
    """What a task id remembers about its prompt and kind (four bits of the id)."""

    NONE = 0
    FAIL = 1
    SLOW = 2
    THROTTLE = 4
    VARIANT = 8
    """Protocol-specific second kind: a Luma image generation, for one."""


def flags_for(prompt: str) -> Flag:
    """The directives a prompt carries as id flags (`sim:reject` and `sim:429` act at submit only)."""
    flags = Flag.NONE
    if "sim:fail" in prompt:
        flags |= Flag.FAIL
    if "sim:slow" in prompt:
        flags |= Flag.SLOW
    if "sim:throttle" in prompt:
        flags |= Flag.THROTTLE
    return flags


def rejects(prompt: str) -> bool:
    return "sim:reject" in prompt


def throttles_once(prompt: str) -> bool:
    return "sim:429" in prompt


HANG_SECONDS = 120.0
"""How long a `sim:hang` submit keeps its answer back (real seconds, whatever the speed)."""


def hangs(prompt: str) -> bool:
    """`sim:hang`: the task is created, but the submit's answer comes only after `HANG_SECONDS`, so
    a caller can be killed between sending a submit and hearing its id (a crash-recovery fault point)."""
    return "sim:hang" in prompt


@dataclass(frozen=True)
class TaskId:
    text: str
    created_ms: int
    flags: Flag
    entropy: int

    @property
    def fails(self) -> bool:
        return Flag.FAIL in self.flags


def _tag(created_ms: int, flags: int, entropy: int) -> int:
    digest = hashlib.blake2b(f"{created_ms}:{flags}:{entropy}".encode(), digest_size=1).digest()
    return digest[0]


def new_task_id(created_ms: int, flags: Flag) -> str:
    """A UUIDv7: 48 bits of creation time, then 4 bits of flags and an 8-bit check tag in `rand_a`."""
    entropy = secrets.randbits(62)
    rand_a = (int(flags) << 8) | _tag(created_ms, int(flags), entropy)
    value = (created_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | entropy
    return str(uuid.UUID(int=value))


def parse_task_id(text: str) -> TaskId | None:
    """The id's creation time and flags, or None when it is not an id this simulator handed out."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    if str(parsed) != text or parsed.version != 7:
        return None
    value = parsed.int
    created_ms = value >> 80
    rand_a = (value >> 64) & 0xFFF
    entropy = value & ((1 << 62) - 1)
    flags = rand_a >> 8
    if rand_a & 0xFF != _tag(created_ms, flags, entropy):
        return None
    return TaskId(text, created_ms, Flag(flags), entropy)


def iso(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the way the upstreams write timestamps."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Clock:
    """Wall time scaled by the speed factor: a task's state is a pure function of its age."""

    def __init__(self, speed: float = 1.0, now: Callable[[], float] = time.time) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._now = now

    def now_ms(self) -> int:
        return int(self._now() * 1000)

    def _scale(self, task: TaskId) -> float:
        return self.speed / (SLOWDOWN if Flag.SLOW in task.flags else 1.0)

    def age(self, task: TaskId, at_ms: int | None = None) -> float:
        """Simulated seconds the task has lived (at speed 1 these are wall seconds)."""
        now = self.now_ms() if at_ms is None else at_ms
        return max(0, now - task.created_ms) / 1000 * self._scale(task)

    def wall_ms(self, task: TaskId, age: float) -> int:
        """The wall time at which the task reaches `age`."""
        return task.created_ms + round(age / self._scale(task) * 1000)

    def seconds_until(self, task: TaskId, age: float) -> float:
        return max(0.0, (self.wall_ms(task, age) - self.now_ms()) / 1000)


@dataclass(frozen=True)
class Moment:
    """Where a task stands: a stage name of its protocol, DONE or FAILED."""

    stage: str
    within: float
    """How far through the current stage, 0.0–1.0 (1.0 once terminal)."""
    progress: float
    """How far through the whole timeline, 0.0–1.0."""

    @property
    def terminal(self) -> bool:
        return self.stage in (DONE, FAILED)


@dataclass(frozen=True)
class Timeline:
    """A protocol's non-terminal stages and how long each lasts at speed 1."""

    stages: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    @property
    def fail_age(self) -> float:
        return self.total * FAIL_AT

    def start_of(self, stage: str) -> float:
        start = 0.0
        for name, seconds in self.stages:
            if name == stage:
                return start
            start += seconds
        raise KeyError(stage)

    def at(self, age: float, *, fails: bool = False) -> Moment:
        if fails and age >= self.fail_age:
            return Moment(FAILED, 1.0, FAIL_AT)
        if age >= self.total:
            return Moment(DONE, 1.0, 1.0)
        start = 0.0
        for name, seconds in self.stages:
            if age < start + seconds:
                return Moment(name, (age - start) / seconds, age / self.total)
            start += seconds
        raise AssertionError("unreachable: age is below the total")
