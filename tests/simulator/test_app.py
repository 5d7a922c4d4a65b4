"""The app as a whole: prefixes, state that survives a restart, `serve`, and `python -m`."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from providers.simulator import PREFIXES, build_app, serve
from providers.simulator.__main__ import main
from tests.servers import free_port
from tests.simulator.conftest import FakeTime

pytestmark = pytest.mark.anyio

RUNWAY = {"Authorization": "Bearer k", "X-Runway-Version": "2024-11-06"}
LUMA = {"Authorization": "Bearer k"}


def client_for(state_dir: Path | None, clock: FakeTime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(1.0, state_dir, now=clock))
    return httpx.AsyncClient(transport=transport, base_url="http://sim.test")


async def test_index_lists_every_prefix() -> None:
    assert PREFIXES == {
        "suno": "/suno",
        "luma": "/luma/dream-machine/v1",
        "pika": "/fal",
        "run": "/runway/v1",
        "local": "/comfyui",
    }
    async with client_for(None, FakeTime()) as client:
        body = (await client.get("/")).json()
    assert body["providers"]["pika"] == "http://sim.test/fal"


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeTime()
    async with client_for(tmp_path, clock) as before:
        body = {"model": "gen4.5", "promptText": "a fox", "ratio": "1280:720", "duration": 5}
        cancelled = (await before.post("/runway/v1/text_to_video", json=body, headers=RUNWAY)).json()["id"]
        running = (await before.post("/runway/v1/text_to_video", json=body, headers=RUNWAY)).json()["id"]
        generation = await before.post(
            PREFIXES["luma"] + "/generations/video", json={"prompt": "p"}, headers=LUMA
        )
        deleted = generation.json()["id"]
        clock.advance(10)
        await before.delete(f"/runway/v1/tasks/{cancelled}", headers=RUNWAY)
        await before.delete(f"{PREFIXES['luma']}/generations/{deleted}", headers=LUMA)
    saved = json.loads((tmp_path / "simulator.json").read_text())
    assert cancelled in saved["cancelled"] and deleted in saved["deleted"]

    clock.advance(40)
    async with client_for(tmp_path, clock) as after:
        assert (await after.get(f"/runway/v1/tasks/{cancelled}", headers=RUNWAY)).json()[
            "status"
        ] == "CANCELLED"
        assert (await after.get(f"/runway/v1/tasks/{running}", headers=RUNWAY)).json()[
            "status"
        ] == "SUCCEEDED"
        assert (await after.get(f"{PREFIXES['luma']}/generations/{deleted}", headers=LUMA)).status_code == 404
    async with client_for(
        None, clock
    ) as forgetful:  # even with no state dir, the id alone carries the timeline
        assert (await forgetful.get(f"/runway/v1/tasks/{running}", headers=RUNWAY)).json()[
            "status"
        ] == "SUCCEEDED"


async def test_unreadable_state_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "simulator.json").write_text("{not json")
    async with client_for(tmp_path, FakeTime()) as client:
        assert (await client.get("/suno/api/get")).json() == []


async def test_serve_runs_until_cancelled() -> None:
    port = free_port()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, "127.0.0.1", port, 50.0, None)
        async with httpx.AsyncClient() as client:
            with anyio.fail_after(10):
                while True:
                    try:
                        response = await client.get(f"http://127.0.0.1:{port}/")
                        break
                    except httpx.ConnectError:
                        await anyio.sleep(0.02)
        assert response.json()["speed"] == 50.0
        tg.cancel_scope.cancel()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/")


def test_module_entry_validates_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--speed", "0"])
    assert "--speed must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as shown:
        main(["--help"])
    assert shown.value.code == 0 and "--state-dir" in capsys.readouterr().out
