"""Task ids carry their creation time and directives; a task's state is a pure function of its age."""

from __future__ import annotations

import uuid

from providers.simulator.timeline import (
    DONE,
    FAILED,
    Clock,
    Flag,
    Timeline,
    flags_for,
    iso,
    new_task_id,
    parse_task_id,
)

NOW_MS = 1_790_000_000_000


def test_ids_are_uuid7_and_round_trip() -> None:
    text = new_task_id(NOW_MS, Flag.FAIL | Flag.SLOW)
    assert uuid.UUID(text).version == 7
    task = parse_task_id(text)
    assert task is not None and task.created_ms == NOW_MS and task.flags == Flag.FAIL | Flag.SLOW
    assert new_task_id(NOW_MS, Flag.NONE) != new_task_id(NOW_MS, Flag.NONE)


def test_foreign_ids_are_not_ours() -> None:
    assert parse_task_id("nope") is None
    assert parse_task_id(str(uuid.uuid4())) is None
    text = new_task_id(NOW_MS, Flag.NONE)
    tampered = text[:-1] + ("0" if text[-1] != "0" else "1")
    forged = [t for t in (tampered, text.upper(), "{" + text + "}") if parse_task_id(t) is not None]
    assert len(forged) <= 1 and text.upper() not in forged  # the 8-bit tag lets 1 in 256 through


def test_directives() -> None:
    assert flags_for("a song sim:fail sim:slow") == Flag.FAIL | Flag.SLOW
    assert flags_for("plain") == Flag.NONE


def test_clock_scales_by_speed_and_slow() -> None:
    now = [NOW_MS / 1000 + 3]
    clock = Clock(20, lambda: now[0])
    fast = parse_task_id(new_task_id(NOW_MS, Flag.NONE))
    slow = parse_task_id(new_task_id(NOW_MS, Flag.SLOW))
    assert fast is not None and slow is not None
    assert clock.age(fast) == 60 and clock.age(slow) == 6
    assert clock.wall_ms(fast, 60) == NOW_MS + 3000


def test_timeline_stages_and_failure() -> None:
    timeline = Timeline((("queued", 10.0), ("running", 30.0)))
    assert timeline.at(0).stage == "queued"
    middle = timeline.at(25)
    assert middle.stage == "running" and middle.within == 0.5
    assert timeline.at(40).stage == DONE
    assert timeline.at(19, fails=True).stage == "running"
    assert timeline.at(20, fails=True).stage == FAILED


def test_iso() -> None:
    assert iso(NOW_MS + 5) == "2026-09-21T14:13:20.005Z"
