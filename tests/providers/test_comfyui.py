"""The ComfyUI adapter: the /history + /queue fallback against pytest-httpx, the websocket path against a
small ComfyUI stand-in served by uvicorn on loopback."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from pytest_httpx import HTTPXMock
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from providers.base import (
    Failed,
    MalformedUpstream,
    OptionError,
    Preview,
    Progress,
    Queued,
    Submitted,
    Succeeded,
    Update,
    UpstreamError,
)
from providers.comfyui import ComfyUIProvider
from tests.providers.conftest import (
    MAX_ATTEMPTS,
    RecordingSleep,
    drain,
    rate_limited,
    retries_run_out,
    settings,
    task,
)
from tests.servers import serving

BASE = "http://127.0.0.1:9104"
PROMPT_ID = "7d6f3f02-3b2e-4c5e-9a53-6d1c3f0b8e21"
IMAGE = {"filename": "gateway_00001_.png", "subfolder": "", "type": "output"}
VIEW = "/view?filename=gateway_00001_.png&subfolder=&type=output"

pytestmark = pytest.mark.anyio


def entry(status_str: str = "success", **fields: Any) -> dict[str, Any]:
    """One /history entry, as ComfyUI keeps it after the prompt ran."""
    body: dict[str, Any] = {
        "prompt": [2, PROMPT_ID, {}, {"client_id": "c"}, ["9"]],
        "outputs": {"9": {"images": [IMAGE]}},
        "status": {
            "status_str": status_str,
            "completed": status_str == "success",
            "messages": [["execution_start", {"prompt_id": PROMPT_ID, "timestamp": 1}]],
        },
        "meta": {"9": {"node_id": "9", "display_node": "9", "parent_node": None, "real_node_id": "9"}},
    }
    body.update(fields)
    return body


def queue(running: Sequence[str] = (), pending: Sequence[str] = ()) -> dict[str, Any]:
    def item(number: int, prompt_id: str) -> list[Any]:
        return [number, prompt_id, {}, {"client_id": "c"}, ["9"]]

    return {
        "queue_running": [item(1, p) for p in running],
        "queue_pending": [item(2 + n, p) for n, p in enumerate(pending)],
    }


def comfy(sleep: RecordingSleep, base: str = BASE, **extra: Any) -> ComfyUIProvider:
    return ComfyUIProvider(settings("local", base, api_key=None, extra=extra), sleep=sleep)


def message(kind: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "data": {"prompt_id": PROMPT_ID, **data}}


# --- the /history + /queue fallback (pytest-httpx) -----------------------------------------------


async def test_without_a_websocket_it_polls_history_and_queue(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=re.compile(r"ws://127\.0\.0\.1:9104/ws\?clientId=\w+"), status_code=404)
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/prompt", json={"prompt_id": PROMPT_ID, "number": 3, "node_errors": {}}
    )
    polls = [
        queue(running=["other"], pending=["waiting", PROMPT_ID]),
        queue(running=["other"], pending=["waiting", PROMPT_ID]),
        queue(running=["waiting"], pending=[PROMPT_ID]),
        queue(running=[PROMPT_ID]),
        queue(running=[PROMPT_ID]),
    ]
    for state in polls:
        httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={})
        httpx_mock.add_response(method="GET", url=f"{BASE}/queue", json=state)
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: entry()})
    provider = comfy(sleep)

    updates = await drain(provider, provider.prepare(task("a red fox", options={"seed": 1234})))

    ws_request, submit = httpx_mock.get_requests()[:2]
    body = json.loads(submit.content)
    assert updates == [
        Submitted(f"{PROMPT_ID}@{body['client_id']}"),
        Queued(2),
        Queued(1),
        Progress(None, "running"),
        Succeeded([f"{BASE}{VIEW}"], "image/png"),
    ]
    assert ws_request.url.params["clientId"] == body["client_id"]
    assert body["prompt"]["6"]["inputs"]["text"] == "a red fox"
    assert body["prompt"]["3"]["inputs"]["seed"] == 1234
    assert body["prompt"]["3"]["class_type"] == "KSampler"
    assert len(sleep.calls) == len(polls)


async def test_a_refused_workflow_fails_with_comfyuis_reasons(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/prompt",
        status_code=400,
        json={
            "error": {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            },
            "node_errors": {
                "4": {
                    "errors": [
                        {
                            "type": "value_not_in_list",
                            "message": "Value not in list",
                            "details": "ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in []",
                            "extra_info": {"input_name": "ckpt_name"},
                        }
                    ],
                    "dependent_outputs": ["9"],
                    "class_type": "CheckpointLoaderSimple",
                }
            },
        },
    )

    updates = await drain(comfy(sleep, websocket=False), task())

    assert updates == [
        Failed(
            "ComfyUI refused the workflow: Prompt outputs failed validation; CheckpointLoaderSimple #4: "
            "Value not in list (ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in [])"
        )
    ]


async def test_an_execution_error_in_history_is_a_failure(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    error = {
        "prompt_id": PROMPT_ID,
        "node_id": "3",
        "node_type": "KSampler",
        "executed": ["4", "6", "7", "5"],
        "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
        "exception_type": "torch.OutOfMemoryError",
        "traceback": [],
        "current_inputs": {},
        "current_outputs": {},
    }
    failed = entry("error", outputs={})
    failed["status"]["messages"].append(["execution_error", error])
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: failed})

    updates = await drain(comfy(sleep, websocket=False), task(upstream_id=f"{PROMPT_ID}@c"))

    assert updates == [Failed("ComfyUI failed in KSampler: CUDA out of memory. Tried to allocate 2.00 GiB")]


async def test_429_is_retried_after_the_upstream_says(sleep: RecordingSleep, httpx_mock: HTTPXMock) -> None:
    rate_limited(httpx_mock, "GET", f"{BASE}/history/{PROMPT_ID}")
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: entry()})

    updates = await drain(comfy(sleep, websocket=False), task(upstream_id=f"{PROMPT_ID}@c"))

    assert updates == [Succeeded([f"{BASE}{VIEW}"], "image/png")]
    assert sleep.calls == [3.0]


async def test_5xx_until_retries_run_out_raises_retryable(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    error = {"type": "server_error", "message": "Internal server error", "details": "", "extra_info": {}}
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/prompt", status_code=500, json={"error": error}, is_reusable=True
    )

    error = await retries_run_out(comfy(sleep, websocket=False), task(), httpx_mock)

    assert error.message == "upstream answered 500: Internal server error"


async def test_malformed_history_is_malformed_upstream(sleep: RecordingSleep, httpx_mock: HTTPXMock) -> None:
    broken = entry(outputs={"9": {"images": [{"subfolder": "", "type": "output"}]}})
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: broken})

    with pytest.raises(MalformedUpstream) as raised:
        await drain(comfy(sleep, websocket=False), task(upstream_id=f"{PROMPT_ID}@c"))

    assert "filename" in raised.value.message


async def test_a_prompt_comfyui_forgot_fails_after_a_few_polls(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={}, is_reusable=True)
    httpx_mock.add_response(method="GET", url=f"{BASE}/queue", json=queue(), is_reusable=True)

    updates = await drain(comfy(sleep, websocket=False), task(upstream_id=f"{PROMPT_ID}@c"))

    assert updates == [
        Failed(
            f"ComfyUI no longer knows prompt {PROMPT_ID} (was the server restarted?).", "upstream_malformed"
        )
    ]
    assert len(httpx_mock.get_requests(url=f"{BASE}/queue")) == 3


async def test_reattach_reads_history_without_submitting(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={})
    httpx_mock.add_response(method="GET", url=f"{BASE}/queue", json=queue(running=[PROMPT_ID]))
    video = {"filename": "clip_00001.mp4", "subfolder": "video", "type": "output", "format": "video/h264-mp4"}
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/history/{PROMPT_ID}",
        json={PROMPT_ID: entry(outputs={"12": {"gifs": [video]}})},
    )

    updates = await drain(comfy(sleep, websocket=False), task(upstream_id=f"{PROMPT_ID}@c"))

    assert updates == [
        Progress(None, "running"),
        Succeeded([f"{BASE}/view?filename=clip_00001.mp4&subfolder=video&type=output"], "video/mp4"),
    ]
    assert httpx_mock.get_requests(method="POST") == []


async def test_cancel_removes_a_waiting_prompt(sleep: RecordingSleep, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/queue", json=queue(running=["other"], pending=[PROMPT_ID])
    )
    httpx_mock.add_response(method="POST", url=f"{BASE}/queue", match_json={"delete": [PROMPT_ID]})

    assert await comfy(sleep).cancel(f"{PROMPT_ID}@c") is True


async def test_cancel_interrupts_a_running_prompt(sleep: RecordingSleep, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/queue", json=queue(running=[PROMPT_ID]))
    httpx_mock.add_response(method="POST", url=f"{BASE}/interrupt", match_json={"prompt_id": PROMPT_ID})

    assert await comfy(sleep).cancel(f"{PROMPT_ID}@c") is True


async def test_cancel_of_a_finished_prompt_is_false(sleep: RecordingSleep, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/queue", json=queue(running=["other"]))

    assert await comfy(sleep).cancel(f"{PROMPT_ID}@c") is False
    assert httpx_mock.get_requests(method="POST") == []


def test_prepare_fixes_a_seed_and_applies_the_style(sleep: RecordingSleep) -> None:
    prepared = comfy(sleep).prepare(task(style_label="Watercolor"))

    assert prepared.prompt == "a lighthouse at dusk, Watercolor style"
    assert 0 <= prepared.options["seed"] <= 2**32 - 1
    assert comfy(sleep).prepare(task(options={"seed": 7})).options["seed"] == 7


def test_prepare_refuses_sizes_the_workflow_cannot_take(sleep: RecordingSleep, tmp_path: Path) -> None:
    with pytest.raises(OptionError) as raised:
        comfy(sleep).prepare(task(options={"width": 500}))
    assert raised.value.option == "width"

    workflow = tmp_path / "no-size.json"
    workflow.write_text(json.dumps({"1": {"class_type": "Prompt", "inputs": {"text": ""}}}))
    custom = comfy(sleep, workflow=str(workflow), prompt_node="1", seed_node="")
    with pytest.raises(OptionError) as raised:
        custom.prepare(task(options={"height": 512}))
    assert raised.value.option == "height"


def test_a_workflow_missing_the_prompt_input_is_a_configuration_error(
    sleep: RecordingSleep, tmp_path: Path
) -> None:
    workflow = tmp_path / "wrong.json"
    workflow.write_text(json.dumps({"1": {"class_type": "Prompt", "inputs": {"caption": ""}}}))

    with pytest.raises(ValueError, match="no input 'text'"):
        comfy(sleep, workflow=str(workflow), prompt_node="1", seed_node="")


# --- the websocket path (a ComfyUI stand-in on loopback) ----------------------------------------


class FakeComfyUI:
    """Just enough ComfyUI: /prompt queues the one prompt, then `script` plays on the websocket of the
    client that queued it once the adapter has looked at /queue: messages (dicts, or bytes for a live
    preview), and the steps "start" (it runs), "done" (history written) and "close" (socket dropped)."""

    def __init__(
        self, script: list[Any], group: anyio.abc.TaskGroup, *, history: bool = False, refuse: bool = False
    ) -> None:
        self.script = script
        self.refuse = refuse
        self.group = group
        self.sockets: dict[str, WebSocket] = {}
        self.history: dict[str, Any] = {PROMPT_ID: entry()} if history else {}
        self.running = ["other"]
        self.pending: list[str] = []
        self.prompts: list[dict[str, Any]] = []
        self.history_reads = 0
        self.queue_seen = anyio.Event()
        self.disconnected = anyio.Event()
        self.app = Starlette(
            routes=[
                Route("/prompt", self.prompt, methods=["POST"]),
                Route("/history/{prompt_id}", self.read_history),
                Route("/queue", self.queue),
                WebSocketRoute("/ws", self.websocket),
            ]
        )

    async def prompt(self, request: Request) -> JSONResponse:
        if self.refuse:
            return JSONResponse({"error": "the GPU is on fire"}, status_code=503)
        body = await request.json()
        self.prompts.append(body)
        self.pending.append(PROMPT_ID)
        self.group.start_soon(self.play, body["client_id"])
        return JSONResponse({"prompt_id": PROMPT_ID, "number": 2, "node_errors": {}})

    async def read_history(self, request: Request) -> JSONResponse:
        self.history_reads += 1
        prompt_id = request.path_params["prompt_id"]
        return JSONResponse({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def queue(self, request: Request) -> JSONResponse:
        answer = JSONResponse(queue(running=self.running, pending=self.pending))
        self.queue_seen.set()
        return answer

    async def websocket(self, websocket: WebSocket) -> None:
        client_id = websocket.query_params["clientId"]
        self.sockets[client_id] = websocket
        await websocket.accept()
        await websocket.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}
        )
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            self.disconnected.set()

    async def play(self, client_id: str) -> None:
        await self.queue_seen.wait()
        socket = self.sockets[client_id]
        for step in self.script:
            if step == "start":
                self.running, self.pending = [PROMPT_ID], []
                await socket.send_json(
                    {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}
                )
            elif step == "done":
                self.history[PROMPT_ID] = entry()
            elif step == "close":
                await socket.close(code=1011)
            elif isinstance(step, bytes):
                await socket.send_bytes(step)
            else:
                await socket.send_json(step)


@asynccontextmanager
async def comfyui(
    script: list[Any], *, history: bool = False, refuse: bool = False
) -> AsyncIterator[tuple[FakeComfyUI, str]]:
    async with anyio.create_task_group() as group:
        fake = FakeComfyUI(script, group, history=history, refuse=refuse)
        async with serving(fake.app, lifespan="off") as url:
            yield fake, url
        group.cancel_scope.cancel()


def submitted_as(updates: list[Update], fake: FakeComfyUI) -> None:
    assert updates[0] == Submitted(f"{PROMPT_ID}@{fake.prompts[0]['client_id']}")


async def test_websocket_progress_for_our_prompt(sleep: RecordingSleep) -> None:
    script = [
        "start",
        message("execution_start", timestamp=1),
        message("execution_cached", nodes=["4"]),
        message("executing", node="3", display_node="3"),
        message("progress", value=1, max=4, node="3", prompt_id="someone-else"),
        message("progress", value=1, max=4, node="3"),
        b"\x00\x00\x00\x01\x00\x00\x00\x02preview",
        message("progress", value=2, max=4, node="3"),
        message("progress", value=4, max=4, node="3"),
        message("executing", node="9", display_node="9"),
        "done",
        message("executing", node=None),
    ]
    async with comfyui(script) as (fake, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10):
            updates = await drain(provider, provider.prepare(task(options={"seed": 42})))
        await provider.aclose()

    submitted_as(updates, fake)
    assert updates[1:] == [
        Queued(1),
        Progress(None, "running"),
        Progress(0, "started"),
        Progress(25, "step 1 of 4"),
        Progress(preview=Preview("image/png", b"preview")),
        Progress(50, "step 2 of 4"),
        Progress(99, "step 4 of 4"),
        Succeeded([f"{url}{VIEW}"], "image/png"),
    ]
    assert fake.prompts[0]["prompt"]["3"]["inputs"]["seed"] == 42


async def test_a_dropped_websocket_falls_back_to_polling(sleep: RecordingSleep) -> None:
    script = [message("execution_start"), message("progress", value=1, max=4, node="3"), "done", "close"]
    async with comfyui(script) as (fake, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10):
            updates = await drain(provider, task())
        await provider.aclose()

    submitted_as(updates, fake)
    assert updates[1:] == [
        Queued(1),
        Progress(0, "started"),
        Progress(25, "step 1 of 4"),
        Succeeded([f"{url}{VIEW}"], "image/png"),
    ]
    assert fake.history_reads == 1


async def test_an_execution_error_on_the_websocket_fails_the_job(sleep: RecordingSleep) -> None:
    error = message(
        "execution_error",
        node_id="3",
        node_type="KSampler",
        exception_message="CUDA out of memory. Tried to allocate 2.00 GiB",
        exception_type="torch.OutOfMemoryError",
        traceback=[],
        executed=[],
        current_inputs={},
        current_outputs={},
    )
    async with comfyui(["start", message("execution_start"), error]) as (_, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10):
            updates = await drain(provider, task())
        await provider.aclose()

    assert updates[-1] == Failed("ComfyUI failed in KSampler: CUDA out of memory. Tried to allocate 2.00 GiB")


async def test_an_upstream_error_inside_the_websocket_session_surfaces_as_itself(
    sleep: RecordingSleep,
) -> None:
    async with comfyui([], refuse=True) as (_, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10), pytest.raises(UpstreamError) as raised:
            await drain(provider, task())
        await provider.aclose()

    assert raised.value.retryable is True
    assert "the GPU is on fire" in raised.value.message
    assert len(sleep.calls) == MAX_ATTEMPTS - 1


async def test_a_quiet_websocket_still_notices_the_result(sleep: RecordingSleep) -> None:
    async with comfyui(["start", "done"]) as (_, url):
        provider = comfy(sleep, url, ws_idle_seconds=0.2)
        with anyio.fail_after(10):
            updates = await drain(provider, task())
        await provider.aclose()

    assert isinstance(updates[0], Submitted)
    assert updates[-1] == Succeeded([f"{url}{VIEW}"], "image/png")


async def test_reattach_over_the_websocket_finds_a_finished_prompt(sleep: RecordingSleep) -> None:
    async with comfyui([], history=True) as (fake, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10):
            updates = await drain(provider, task(upstream_id=f"{PROMPT_ID}@c"))
        await provider.aclose()

    assert updates == [Succeeded([f"{url}{VIEW}"], "image/png")]
    assert fake.prompts == []


async def test_closing_the_run_mid_stream_closes_the_websocket_cleanly(sleep: RecordingSleep) -> None:
    async with comfyui(["start", message("execution_start")]) as (fake, url):
        provider = comfy(sleep, url)
        with anyio.fail_after(10):
            async with aclosing(provider.run(task())) as updates:
                async for update in updates:
                    if update == Progress(0, "started"):
                        break
            await fake.disconnected.wait()
        await provider.aclose()


async def test_a_deadline_while_waiting_on_the_websocket_cancels_cleanly(sleep: RecordingSleep) -> None:
    async with comfyui(["start"]) as (fake, url):
        provider = comfy(sleep, url)
        with anyio.move_on_after(0.5) as deadline:
            await drain(provider, task())
        assert deadline.cancelled_caught
        with anyio.fail_after(5):
            await fake.disconnected.wait()
        await provider.aclose()


# --- any workflow: nodes found in the workflow itself ------------------------------------------

SDXL_LIKE = {
    "10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
    "11": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly, blurry", "clip": ["10", 1]}},
    "12": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["10", 1]}},
    "13": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["12", 0]}},
    "14": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "15": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "noise_seed": 0,
            "steps": 30,
            "model": ["10", 0],
            "positive": ["13", 0],
            "negative": ["11", 0],
            "latent_image": ["14", 0],
        },
    },
    "16": {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["10", 2]}},
    "17": {"class_type": "PreviewImage", "inputs": {"images": ["16", 0]}},
    "18": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["16", 0]}},
}


def write(tmp_path: Path, nodes: dict[str, Any]) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(nodes))
    return str(path)


async def submitted_workflow(provider: ComfyUIProvider, httpx_mock: HTTPXMock, job: Any) -> dict[str, Any]:
    httpx_mock.add_response(
        method="POST", url=f"{BASE}/prompt", json={"prompt_id": PROMPT_ID, "number": 1, "node_errors": {}}
    )
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: entry()})
    await drain(provider, provider.prepare(job))
    prompt: dict[str, Any] = json.loads(httpx_mock.get_requests(method="POST")[0].content)["prompt"]
    return prompt


async def test_a_workflow_naming_no_nodes_gets_prompt_seed_and_size_where_they_belong(
    sleep: RecordingSleep, httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    provider = comfy(sleep, websocket=False, workflow=write(tmp_path, SDXL_LIKE))

    sent = await submitted_workflow(
        provider, httpx_mock, task("a red fox", options={"seed": 99, "width": 832, "height": 1216})
    )

    assert sent["12"]["inputs"]["text"] == "a red fox"  # behind the sampler's positive, not the negative
    assert sent["11"]["inputs"]["text"] == "ugly, blurry"
    assert sent["15"]["inputs"]["noise_seed"] == 99
    assert (sent["14"]["inputs"]["width"], sent["14"]["inputs"]["height"]) == (832, 1216)
    assert provider.workflow.output_node == "18"  # a saved file beats a preview


async def test_without_size_options_the_workflows_own_size_stands(
    sleep: RecordingSleep, httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    provider = comfy(sleep, websocket=False, workflow=write(tmp_path, SDXL_LIKE))

    sent = await submitted_workflow(provider, httpx_mock, task("a red fox"))

    assert (sent["14"]["inputs"]["width"], sent["14"]["inputs"]["height"]) == (1024, 1024)


async def test_the_model_free_workflow_needs_no_node_names_and_takes_no_seed(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    provider = comfy(sleep, websocket=False, workflow="model_free.json", seed_node=None)

    prepared = provider.prepare(task("anything"))
    assert "seed" not in prepared.options
    with pytest.raises(OptionError) as raised:
        provider.prepare(task(options={"seed": 3}))
    assert raised.value.option == "seed"
    sent = await submitted_workflow(provider, httpx_mock, task(options={"width": 64}))
    assert sent["1"]["inputs"]["width"] == 64 and sent["1"]["inputs"]["height"] == 512
    assert provider.workflow.prompt is None and provider.workflow.output_node == "3"


def test_named_nodes_override_what_is_found(sleep: RecordingSleep, tmp_path: Path) -> None:
    provider = comfy(
        sleep, workflow=write(tmp_path, SDXL_LIKE), prompt_node="11", seed_node="15", output_node="17"
    )

    assert provider.workflow.prompt == ("11", "text")
    assert provider.workflow.seeds == (("15", "noise_seed"),)
    assert provider.workflow.output_node == "17"
    with pytest.raises(ValueError, match="no node '99'"):
        comfy(sleep, workflow=write(tmp_path, SDXL_LIKE), size_node="99")
    with pytest.raises(ValueError, match="has no width and height"):
        comfy(sleep, workflow=write(tmp_path, SDXL_LIKE), size_node="12")


async def test_outputs_refused_on_a_200_are_told_in_the_jobs_messages(
    sleep: RecordingSleep, httpx_mock: HTTPXMock
) -> None:
    refused = {
        "18": {
            "errors": [
                {
                    "type": "required_input_missing",
                    "message": "Required input is missing",
                    "details": "images",
                    "extra_info": {"input_name": "images"},
                }
            ],
            "dependent_outputs": ["18"],
            "class_type": "SaveImage",
        }
    }
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/prompt",
        json={"prompt_id": PROMPT_ID, "number": 1, "node_errors": refused},
    )
    httpx_mock.add_response(method="GET", url=f"{BASE}/history/{PROMPT_ID}", json={PROMPT_ID: entry()})

    updates = await drain(comfy(sleep, websocket=False), task())

    assert updates[1] == Progress(
        None, "ComfyUI skipped part of the workflow: SaveImage #18: Required input is missing (images)"
    )
    assert isinstance(updates[-1], Succeeded)


async def test_progress_state_counts_nodes_where_there_is_no_sampler(sleep: RecordingSleep) -> None:
    def state(**nodes: tuple[str, float, float]) -> dict[str, Any]:
        return message(
            "progress_state",
            nodes={
                n: {"value": v, "max": m, "state": s, "node_id": n, "prompt_id": PROMPT_ID}
                for n, (s, v, m) in nodes.items()
            },
        )

    with_metadata = json.dumps({"image_type": "image/jpeg", "prompt_id": PROMPT_ID, "node_id": "2"}).encode()
    someone_elses = json.dumps({"image_type": "image/jpeg", "prompt_id": "other"}).encode()
    script = [
        "start",
        message("execution_start"),
        message("execution_cached", nodes=["1"]),
        state(**{"1": ("finished", 1, 1), "2": ("running", 0, 1)}),
        struct.pack(">II", 4, len(someone_elses)) + someone_elses + b"\xff\xd8not ours",
        state(**{"1": ("finished", 1, 1), "2": ("running", 5, 10)}),
        struct.pack(">II", 4, len(with_metadata)) + with_metadata + b"\xff\xd8jpeg",
        state(**{"1": ("finished", 1, 1), "2": ("finished", 10, 10), "3": ("running", 0, 1)}),
        "done",
        message("executing", node=None),
    ]
    async with comfyui(script) as (_, url):
        provider = comfy(sleep, url, workflow="model_free.json")
        with anyio.fail_after(10):
            updates = await drain(provider, task())
        await provider.aclose()

    assert updates[3:] == [
        Progress(0, "started"),
        Progress(33, "1 of 3 nodes done"),
        Progress(50, "1 of 3 nodes done"),
        Progress(preview=Preview("image/jpeg", b"\xff\xd8jpeg")),
        Progress(67, "2 of 3 nodes done"),
        Succeeded([f"{url}{VIEW}"], "image/png"),
    ]
