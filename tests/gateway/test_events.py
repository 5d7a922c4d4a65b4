"""The in-process event bus: fan-out to listeners, and what it does with one that falls behind."""

from __future__ import annotations

import anyio
import pytest

from gateway.store.event_records import Event
from gateway.streams.events import EventHub

pytestmark = pytest.mark.anyio


async def test_a_listener_that_falls_behind_is_closed_rather_than_silently_skipped() -> None:
    hub = EventHub()
    with hub.subscribe("job_x") as live:
        for seq in range(1, 70):
            await hub.publish(Event("job_x", seq, {"status": "Processing", "job_id": "job_x"}))
        received = [event.seq async for event in live]  # the buffer, then the end of the stream
    assert received == list(range(1, len(received) + 1)) and len(received) < 69
    assert hub.listener_count == 0


async def test_a_listener_cancelled_while_waiting_leaves_the_mailbox_usable() -> None:
    hub = EventHub()
    with hub.subscribe("job_y") as live:
        with anyio.move_on_after(0.01):
            await live.receive()  # nothing yet: cancelled while waiting
        await hub.publish(Event("job_y", 1, {"status": "Processing", "job_id": "job_y"}))
        assert (await live.receive()).seq == 1
    with pytest.raises(anyio.EndOfStream):  # closed on leaving the subscription, nothing held
        await live.receive()


async def test_a_timed_receive_gives_none_after_its_time_and_the_event_once_it_comes() -> None:
    hub = EventHub()
    with hub.subscribe("job_t") as live:
        assert await live.receive(0.01) is None  # nothing came: the follower reads the log instead
        await hub.publish(Event("job_t", 1, {"status": "Processing", "job_id": "job_t"}))
        event = await live.receive(5)
        assert event is not None and event.seq == 1
