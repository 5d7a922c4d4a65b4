"""ComfyUI: queue a workflow, follow it over the websocket, read its history, queue and output file."""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio


def workflow(prompt: str = "a lighthouse at dusk", steps: int = 4) -> dict[str, Any]:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


async def queue_prompt(client: httpx.AsyncClient, prompt: str, client_id: str = "tests") -> httpx.Response:
    return await client.post("/comfyui/prompt", json={"prompt": workflow(prompt), "client_id": client_id})


async def history(sim: Sim, prompt_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await sim.client.get(f"/comfyui/history/{prompt_id}")).json()
    return body


async def queue(sim: Sim) -> dict[str, list[list[Any]]]:
    body: dict[str, list[list[Any]]] = (await sim.client.get("/comfyui/queue")).json()
    return body


async def test_prompt_life_over_http(sim: Sim) -> None:
    response = await queue_prompt(sim.client, "a lighthouse at dusk")
    assert response.status_code == 200
    queued = response.json()
    assert queued["node_errors"] == {} and isinstance(queued["number"], int)
    pid = queued["prompt_id"]
    pending = (await queue(sim))["queue_pending"]
    assert [item[1] for item in pending] == [pid] and pending[0][3] == {"client_id": "tests"}
    assert await history(sim, pid) == {}
    sim.time.advance(2)
    running = await queue(sim)
    assert [item[1] for item in running["queue_running"]] == [pid] and running["queue_pending"] == []
    assert await history(sim, pid) == {}
    sim.time.advance(9)
    entry = (await history(sim, pid))[pid]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert entry["prompt"][1] == pid and entry["prompt"][2] == workflow() and entry["prompt"][4] == ["9"]
    image = entry["outputs"]["9"]["images"][0]
    assert image["type"] == "output" and image["subfolder"] == "" and image["filename"].endswith(".png")
    view = await sim.client.get("/comfyui/view", params=image)
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    assert view.content.startswith(b"\x89PNG")
    assert await queue(sim) == {"queue_running": [], "queue_pending": []}
    assert pid in (await sim.client.get("/comfyui/history")).json()


async def test_directive_anywhere_in_the_workflow_fails_it(sim: Sim) -> None:
    pid = (await queue_prompt(sim.client, "a storm sim:fail")).json()["prompt_id"]
    sim.time.advance(6)
    entry = (await history(sim, pid))[pid]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    error = entry["status"]["messages"][-1]
    assert error[0] == "execution_error" and "sim:fail" in error[1]["exception_message"]
    assert error[1]["node_type"] == "KSampler" and error[1]["executed"] == ["4", "6", "7", "5"]
    assert entry["outputs"] == {}
    name = f"ComfyUI_{pid}_00001_.png"
    assert (
        await sim.client.get("/comfyui/view", params={"filename": name, "type": "output"})
    ).status_code == 404


async def test_interrupt_and_queue_delete(sim: Sim) -> None:
    running = (await queue_prompt(sim.client, "first")).json()["prompt_id"]
    sim.time.advance(3)
    waiting = (await queue_prompt(sim.client, "second")).json()["prompt_id"]
    assert (await sim.client.post("/comfyui/interrupt")).status_code == 200
    entry = (await history(sim, running))[running]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert [i[1] for i in (await queue(sim))["queue_pending"]] == [waiting]
    deleted = await sim.client.post("/comfyui/queue", json={"delete": [waiting]})
    assert deleted.status_code == 200
    sim.time.advance(30)
    assert await history(sim, waiting) == {}
    assert await queue(sim) == {"queue_running": [], "queue_pending": []}


async def test_refused_workflows(sim: Sim) -> None:
    cases = [
        ({"client_id": "x"}, "no_prompt"),
        ({"prompt": "just text"}, "invalid_prompt"),
        ({"prompt": {"1": {"inputs": {}}}}, "invalid_prompt"),
        ({"prompt": {"1": {"class_type": "KSampler", "inputs": {}}}}, "prompt_no_outputs"),
    ]
    for body, kind in cases:
        response = await sim.client.post("/comfyui/prompt", json=body)
        assert response.status_code == 400 and response.json()["error"]["type"] == kind
        assert response.json()["node_errors"] == {}


async def test_sim_429_reject_and_unknown(sim: Sim) -> None:
    throttled = await queue_prompt(sim.client, "later sim:429")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
    assert (await queue_prompt(sim.client, "later sim:429")).status_code == 200
    for _ in range(2):
        assert (await queue_prompt(sim.client, "no sim:reject")).status_code == 500
    assert await history(sim, "not-a-prompt") == {}
    assert (await sim.client.get("/comfyui/view", params={"filename": "missing.png"})).status_code == 404


async def receive_until_done(socket: Any, prompt_id: str) -> list[dict[str, Any]]:
    messages = []
    with anyio.fail_after(5):
        while True:
            received = await socket.recv()
            if isinstance(received, bytes):
                messages.append({"type": "binary", "data": received})
                continue
            message = json.loads(received)
            messages.append(message)
            if message["type"] == "executing" and message["data"] == {"node": None, "prompt_id": prompt_id}:
                return messages


async def test_websocket_follows_a_prompt(live_url: str) -> None:
    client_id = uuid.uuid4().hex
    ws_url = live_url.replace("http://", "ws://") + f"/comfyui/ws?clientId={client_id}"
    async with connect(ws_url) as socket, httpx.AsyncClient(base_url=live_url) as client:
        hello = json.loads(await socket.recv())
        assert hello["type"] == "status" and hello["data"]["sid"] == client_id
        assert "queue_remaining" in hello["data"]["status"]["exec_info"]
        pid = (await queue_prompt(client, "a lighthouse", client_id)).json()["prompt_id"]
        messages = await receive_until_done(socket, pid)
        kinds = [m["type"] for m in messages if m["type"] != "status"]
        assert kinds[:2] == ["execution_start", "execution_cached"]
        assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == [
            "4",
            "6",
            "7",
            "5",
            "3",
            "8",
            "9",
            None,
        ]
        progress = [m["data"] for m in messages if m["type"] == "progress"]
        assert [p["value"] for p in progress] == [1, 2, 3, 4] and progress[0]["max"] == 4
        assert progress[0]["prompt_id"] == pid and progress[0]["node"] == "3"
        states = [m["data"] for m in messages if m["type"] == "progress_state"]
        assert states[0]["prompt_id"] == pid and states[0]["nodes"]["4"]["state"] == "running"
        assert all(n["state"] == "finished" for n in states[-1]["nodes"].values())
        assert set(states[-1]["nodes"]) == {"3", "4", "5", "6", "7", "8", "9"}
        frames = [m["data"] for m in messages if m["type"] == "binary"]
        assert len(frames) == 4  # a preview image at each sampler step: PREVIEW_IMAGE (1), PNG (2)
        assert all(f[:8] == b"\x00\x00\x00\x01\x00\x00\x00\x02" and f[8:12] == b"\x89PNG" for f in frames)
        executed = next(m["data"] for m in messages if m["type"] == "executed")
        assert executed["node"] == "9" and executed["output"]["images"][0]["type"] == "output"
        assert kinds[-2:] == ["execution_success", "executing"]

        failing = (await queue_prompt(client, "boom sim:fail", client_id)).json()["prompt_id"]
        failed = [m["type"] for m in await receive_until_done(socket, failing) if m["type"] != "status"]
        assert failed[-2:] == ["execution_error", "executing"] and "execution_success" not in failed


async def test_websocket_only_hears_its_own_prompts(live_url: str) -> None:
    ws_url = live_url.replace("http://", "ws://") + "/comfyui/ws?clientId=bystander"
    async with connect(ws_url) as socket, httpx.AsyncClient(base_url=live_url) as client:
        await socket.recv()
        await queue_prompt(client, "not yours sim:slow", "someone-else")  # slow: lasts several ticks
        heard = []
        with anyio.move_on_after(0.3):
            while True:
                heard.append(json.loads(await socket.recv()))
    assert heard and {m["type"] for m in heard} == {"status"}  # the queue's size, never the events


async def test_object_info_lists_the_node_types_it_validates_against(sim: Sim) -> None:
    info = (await sim.client.get("/comfyui/object_info")).json()
    assert {"KSampler", "EmptyImage", "SaveImage", "CLIPTextEncode"} <= set(info)
    assert info["SaveImage"]["output_node"] is True and info["KSampler"]["output_node"] is False
    assert "seed" in info["KSampler"]["input"]["required"]
    one = (await sim.client.get("/comfyui/object_info/EmptyImage")).json()
    assert list(one) == ["EmptyImage"]

    unknown = {**workflow(), "12": {"class_type": "FancyUpscaler", "inputs": {}, "_meta": {"title": "Up"}}}
    refused = await sim.client.post("/comfyui/prompt", json={"prompt": unknown})
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "missing_node_type"
    assert refused.json()["error"]["extra_info"]["class_type"] == "FancyUpscaler"


async def test_outputs_with_missing_inputs_are_left_out_on_a_200(sim: Sim) -> None:
    partial = {**workflow(), "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    accepted = await sim.client.post("/comfyui/prompt", json={"prompt": partial})
    assert accepted.status_code == 200
    errors = accepted.json()["node_errors"]
    assert errors["10"]["class_type"] == "SaveImage" and errors["10"]["dependent_outputs"] == ["10"]
    assert errors["10"]["errors"][0]["type"] == "required_input_missing"
    sim.time.advance(30)
    pid = accepted.json()["prompt_id"]
    assert list((await history(sim, pid))[pid]["outputs"]) == ["9"]

    nothing = {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    refused = await sim.client.post("/comfyui/prompt", json={"prompt": nothing})
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "prompt_outputs_failed_validation"
    assert "9" in refused.json()["node_errors"]


async def test_unchanged_nodes_are_cached_on_the_next_prompt(sim: Sim) -> None:
    first = (await queue_prompt(sim.client, "a lighthouse")).json()["prompt_id"]
    again = workflow("a lighthouse")
    again["3"]["inputs"]["seed"] = 2
    second = (await sim.client.post("/comfyui/prompt", json={"prompt": again})).json()["prompt_id"]
    sim.time.advance(30)

    def cached(entry: dict[str, Any]) -> list[str]:
        return next(d["nodes"] for kind, d in entry["status"]["messages"] if kind == "execution_cached")

    assert cached((await history(sim, first))[first]) == []
    assert sorted(cached((await history(sim, second))[second])) == ["4", "5", "6", "7"]


async def test_a_client_that_takes_preview_metadata_gets_previews_with_their_prompt(live_url: str) -> None:
    client_id = uuid.uuid4().hex
    ws_url = live_url.replace("http://", "ws://") + f"/comfyui/ws?clientId={client_id}"
    async with connect(ws_url) as socket, httpx.AsyncClient(base_url=live_url) as client:
        await socket.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        pid = (await queue_prompt(client, "a lighthouse", client_id)).json()["prompt_id"]
        messages = await receive_until_done(socket, pid)
    assert any(m["type"] == "feature_flags" and m["data"]["supports_preview_metadata"] for m in messages)
    frames = [m["data"] for m in messages if m["type"] == "binary"]
    assert len(frames) == 4
    for frame in frames:
        kind, length = struct.unpack(">II", frame[:8])
        metadata = json.loads(frame[8 : 8 + length])
        assert kind == 4 and metadata["prompt_id"] == pid and metadata["image_type"] == "image/png"
        assert frame[8 + length :].startswith(b"\x89PNG")


async def test_sim_hang_queues_the_prompt_and_keeps_the_answer_back(sim: Sim) -> None:
    answers: list[httpx.Response] = []

    async def submit() -> None:
        answers.append(await queue_prompt(sim.client, "a lighthouse sim:hang", client_id="job-marker"))

    async with anyio.create_task_group() as group:
        group.start_soon(submit)
        listed: list[list[Any]] = []
        with anyio.fail_after(10):
            while not listed:
                await anyio.sleep(0.01)
                state = await queue(sim)
                listed = state["queue_pending"] + state["queue_running"]
        assert listed[0][3] == {"client_id": "job-marker"}  # found by the client id it was sent with
        assert answers == []  # queued upstream, and the caller has not heard its id
        group.cancel_scope.cancel()
