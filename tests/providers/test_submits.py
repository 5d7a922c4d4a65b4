"""Every adapter's submit, at most once: announced before it leaves, never resent once it may have
arrived; and ComfyUI's way of finding a submitted prompt again by the client id it carried."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from providers.base import Submitted, Submitting, SubmitUncertain
from providers.comfyui import ComfyUIProvider, client_id_for
from providers.luma import LumaProvider
from providers.pika import PikaProvider
from providers.runway import RunwayProvider
from providers.suno import SunoProvider
from tests.providers.conftest import RecordingSleep, drain, settings, task

pytestmark = pytest.mark.anyio

PROMPT_ID = "7d6f3f02-3b2e-4c5e-9a53-6d1c3f0b8e21"
COMFY = "http://127.0.0.1:9104"
HANDLE = {
    "request_id": "req-1",
    "response_url": "http://127.0.0.1:9102/fal-ai/pika/requests/req-1",
    "status_url": "http://127.0.0.1:9102/fal-ai/pika/requests/req-1/status",
    "cancel_url": "http://127.0.0.1:9102/fal-ai/pika/requests/req-1/cancel",
}

# provider name → (adapter factory, submit URL, submit answer)
OPTIONS = {"run": {"ratio": "1280:720", "duration": 5}}
SUBMITS: dict[str, tuple[Callable[[RecordingSleep], Any], str, Any]] = {
    "luma": (
        lambda sleep: LumaProvider(settings("luma", "http://127.0.0.1:9101/v1"), sleep=sleep),
        "http://127.0.0.1:9101/v1/generations/video",
        {"id": "gen-1", "state": "queued"},
    ),
    "run": (
        lambda sleep: RunwayProvider(settings("run", "http://127.0.0.1:9103/v1"), sleep=sleep),
        "http://127.0.0.1:9103/v1/text_to_video",
        {"id": "task-1"},
    ),
    "pika": (
        lambda sleep: PikaProvider(settings("pika", "http://127.0.0.1:9102"), sleep=sleep),
        "http://127.0.0.1:9102/fal-ai/pika/v2.2/text-to-video",
        {**HANDLE, "status": "IN_QUEUE", "queue_position": 0},
    ),
    "suno": (
        lambda sleep: SunoProvider(settings("suno", "http://127.0.0.1:9100"), sleep=sleep),
        "http://127.0.0.1:9100/api/generate",
        [{"id": "a", "status": "submitted"}, {"id": "b", "status": "submitted"}],
    ),
    "local": (
        lambda sleep: ComfyUIProvider(
            settings("local", COMFY, api_key=None, extra={"websocket": False}), sleep=sleep
        ),
        f"{COMFY}/prompt",
        {"prompt_id": PROMPT_ID, "number": 1, "node_errors": {}},
    ),
}


def comfy(sleep: RecordingSleep, **extra: Any) -> ComfyUIProvider:
    return ComfyUIProvider(
        settings("local", COMFY, api_key=None, extra={"websocket": False, **extra}), sleep=sleep
    )


@pytest.mark.parametrize("name", sorted(SUBMITS))
async def test_the_submit_is_announced_before_it_leaves(
    name: str, sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    make, url, answer = SUBMITS[name]
    httpx_mock.add_response(method="POST", url=url, json=answer, status_code=201 if name == "luma" else 200)
    provider = make(sleep)
    async with aclosing(provider.run(task(options=OPTIONS.get(name)))) as updates:
        assert await anext(updates) == Submitting()
        assert httpx_mock.get_requests() == []  # the runner records the intent while nothing is sent
        assert isinstance(await anext(updates), Submitted)
        assert [request.method for request in httpx_mock.get_requests()] == ["POST"]
    await provider.aclose()


@pytest.mark.parametrize("name", sorted(SUBMITS))
async def test_a_submit_that_got_no_answer_is_not_sent_again(
    name: str, sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    make, url, _ = SUBMITS[name]
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), method="POST", url=url)
    provider = make(sleep)
    with pytest.raises(SubmitUncertain):
        await drain(provider, task(options=OPTIONS.get(name)))
    assert len(httpx_mock.get_requests()) == 1
    await provider.aclose()


@pytest.mark.parametrize("name", sorted(SUBMITS))
async def test_a_submit_that_never_connected_is_sent_again(
    name: str, sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    make, url, answer = SUBMITS[name]
    httpx_mock.add_exception(httpx.ConnectError("refused"), method="POST", url=url)
    httpx_mock.add_response(method="POST", url=url, json=answer, status_code=201 if name == "luma" else 200)
    provider = make(sleep)
    async with aclosing(provider.run(task(options=OPTIONS.get(name)))) as updates:
        assert await anext(updates) == Submitting()
        assert isinstance(await anext(updates), Submitted)
    assert len(httpx_mock.get_requests()) == 2
    await provider.aclose()


# --- ComfyUI: the prompt found again ------------------------------------------------------------------


def item(number: int, prompt_id: str, client_id: str) -> list[Any]:
    return [number, prompt_id, {}, {"client_id": client_id}, ["9"]]


async def test_comfyui_queues_with_a_client_id_derived_from_the_job(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    make, url, answer = SUBMITS["local"]
    httpx_mock.add_response(method="POST", url=url, json=answer)
    provider = make(sleep)
    async with aclosing(provider.run(task())) as updates:
        await anext(updates)
        assert await anext(updates) == Submitted(f"{PROMPT_ID}@{client_id_for('job-1')}")
    request = httpx_mock.get_requests()[0]
    assert httpx.Response(200, content=request.content).json()["client_id"] == client_id_for("job-1")
    assert client_id_for("job-1") != client_id_for("job-2")
    await provider.aclose()


async def test_comfyui_finds_a_waiting_or_running_prompt_in_the_queue(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    mine = client_id_for("job-1")
    httpx_mock.add_response(
        method="GET",
        url=f"{COMFY}/queue",
        json={
            "queue_running": [item(1, "someone-elses", "other")],
            "queue_pending": [item(2, "not-mine", client_id_for("job-2")), item(3, PROMPT_ID, mine)],
        },
    )
    provider = comfy(sleep)
    assert await provider.find_submitted(task()) == f"{PROMPT_ID}@{mine}"
    await provider.aclose()


async def test_comfyui_finds_a_finished_prompt_in_the_history(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    mine = client_id_for("job-1")
    httpx_mock.add_response(
        method="GET", url=f"{COMFY}/queue", json={"queue_running": [], "queue_pending": []}
    )
    httpx_mock.add_response(
        method="GET",
        url=f"{COMFY}/history?max_items=50",
        json={
            "other": {"prompt": item(4, "other", "x"), "outputs": {}},
            PROMPT_ID: {
                "prompt": item(5, PROMPT_ID, mine),
                "outputs": {},
                "status": {"status_str": "success"},
            },
        },
    )
    provider = comfy(sleep, recovery_history_items=50)
    assert await provider.find_submitted(task()) == f"{PROMPT_ID}@{mine}"
    await provider.aclose()


async def test_comfyui_finds_nothing_when_it_holds_no_prompt_of_the_job(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="GET",
        url=f"{COMFY}/queue",
        json={"queue_running": [item(1, "x", "other")], "queue_pending": []},
    )
    httpx_mock.add_response(method="GET", url=f"{COMFY}/history?max_items=500", json={})
    provider = comfy(sleep)
    assert await provider.find_submitted(task()) is None
    await provider.aclose()
