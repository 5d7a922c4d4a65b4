"""Live previews: a frame kept as a small image behind a signed link, a stream behind a signed redirect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import Harness, bearer, make_settings
from tests.fakes import PREVIEW_FRAME
from tests.sse import parse

pytestmark = pytest.mark.anyio


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The usual harness, with an hour between stored frames: whatever the machine's speed, only
    the first frame of a job is kept."""
    settings = make_settings(tmp_path, preview_seconds=3600)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, settings)


async def generate(harness: Harness, prompt: str) -> list[dict[str, Any]]:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": prompt}, headers=bearer(key)
    )
    assert response.status_code == 200
    return [event for _, event in parse(response.text)]


def previews(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "preview_url" in e]


async def test_a_frame_is_kept_behind_a_signed_link_and_the_next_within_the_interval_dropped(
    harness: Harness,
) -> None:
    events = await generate(harness, "a song with a preview")

    frame, stream = previews(events)
    assert frame["status"] == "Processing" and frame["progress"] == 25  # the progress so far
    assert frame["preview_url"].startswith("http://testserver/files/")
    download = await harness.client.get(frame["preview_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    assert download.content == PREVIEW_FRAME  # the second frame came too soon: not stored
    assert events[-1]["status"] == "Completed"
    assert (
        await harness.client.get(frame["preview_url"].replace("signature=", "signature=0"))
    ).status_code == 403

    assert stream["progress"] == 50 and stream["message"] == "streaming"
    redirect = await harness.client.get(stream["preview_url"])
    assert redirect.status_code == 307 and redirect.headers["location"].startswith("https://cdn.example/")
    forged = httpx.URL(stream["preview_url"]).copy_set_param("src", "https://elsewhere.example/x.mp3")
    assert (await harness.client.get(str(forged))).status_code == 403


async def test_a_failed_job_keeps_no_preview(harness: Harness) -> None:
    events = await generate(harness, "a song with a preview that will fail")

    assert events[-1]["status"] == "Error"
    frame = previews(events)[0]
    assert (await harness.client.get(frame["preview_url"])).status_code == 404


async def test_without_previews_no_event_carries_a_preview_url(harness: Harness) -> None:
    assert previews(await generate(harness, "a song")) == []
