"""End to end: the `local` model through a real gateway against the simulated ComfyUI, with workflows
that name none of their nodes, and the live preview frames of a sampler behind signed links."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Live
from tests.e2e.test_generate_e2e import auth, stream_events

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

RENUMBERED = {
    "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark, blurry", "clip": ["20", 1]}},
    "22": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["20", 1]}},
    "23": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "24": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 0,
            "steps": 12,
            "cfg": 6.5,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["20", 0],
            "positive": ["22", 0],
            "negative": ["21", 0],
            "latent_image": ["23", 0],
        },
    },
    "25": {"class_type": "VAEDecode", "inputs": {"samples": ["24", 0], "vae": ["20", 2]}},
    "26": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sdxl", "images": ["25", 0]}},
}


@pytest.fixture
def renumbered_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requested before `live`: the gateway it starts loads this workflow, naming no node."""
    path = tmp_path / "sdxl.json"
    path.write_text(json.dumps(RENUMBERED))
    monkeypatch.setenv("GATEWAY_PROVIDERS__LOCAL__EXTRA__WORKFLOW", str(path))


@pytest.fixture
def model_free_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PROVIDERS__LOCAL__EXTRA__WORKFLOW", "model_free.json")


async def upstream_workflow(live: Live) -> dict[str, Any]:
    """The workflow the simulated ComfyUI was sent (its history keeps it)."""
    async with httpx.AsyncClient(base_url=live.simulator_url) as simulator:
        history = (await simulator.get("/comfyui/history")).json()
    (entry,) = history.values()
    workflow: dict[str, Any] = entry["prompt"][2]
    return workflow


async def test_a_workflow_naming_no_nodes_renders_with_previews(
    renumbered_workflow: None, live: Live
) -> None:
    key = await live.new_key(100)
    body = {"model": "local", "prompt": "a lighthouse at dusk", "options": {"seed": 7, "width": 768}}
    events = [event for _, event in await stream_events(live, key, body)]

    assert events[-1]["status"] == "Completed", events[-1]
    previews = [e for e in events if "preview_url" in e]
    assert previews and all(e["status"] == "Processing" for e in previews)
    async with httpx.AsyncClient() as anonymous:  # signed like results: no Authorization header
        frame = await anonymous.get(previews[-1]["preview_url"])
        result = await anonymous.get(events[-1]["url"])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
    assert frame.content.startswith(b"\x89PNG")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    sent = await upstream_workflow(live)
    assert sent["22"]["inputs"]["text"] == "a lighthouse at dusk"
    assert sent["21"]["inputs"]["text"] == "watermark, blurry"
    assert sent["24"]["inputs"]["seed"] == 7
    assert (sent["23"]["inputs"]["width"], sent["23"]["inputs"]["height"]) == (768, 1024)


async def test_the_model_free_workflow_counts_progress_in_nodes(
    model_free_workflow: None, live: Live
) -> None:
    key = await live.new_key(100)
    events = [event for _, event in await stream_events(live, key, {"model": "local", "prompt": "smoke"})]

    assert events[-1]["status"] == "Completed", events[-1]
    messages = [e.get("message", "") for e in events if e["status"] == "Processing"]
    assert any(m.endswith("of 3 nodes done") for m in messages), messages
    job = (await live.client.get(f"/api/generations/{events[0]['job_id']}", headers=auth(key))).json()
    assert job["options"] == {}  # no seed (the workflow takes none), no size forced on it
    sent = await upstream_workflow(live)
    assert sent["1"]["inputs"]["width"] == 512 and sent["3"]["class_type"] == "SaveImage"
