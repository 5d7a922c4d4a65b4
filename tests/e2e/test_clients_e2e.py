"""The sync SDK and the `gateway generate` CLI against a real server."""

from __future__ import annotations

import json
import os
import sys
import wave
from pathlib import Path

import anyio
import pytest

from gateway_client import Gateway, InsufficientTokens
from tests.e2e.conftest import Live

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_sync_client_generates_and_downloads(live: Live, tmp_path: Path) -> None:
    key = await live.new_key(15)

    def use_it() -> tuple[list[str], int, Path]:
        with Gateway(live.url, key) as gw:
            statuses = [event.status for event in gw.generate("suno", "a waltz")]
            job = gw.list(status="completed")["items"][0]
            path = gw.download(job["url"], tmp_path / "waltz.wav")
            with pytest.raises(InsufficientTokens):
                gw.create("suno", "one too many")
            return statuses, gw.balance(), path

    statuses, balance, path = await anyio.to_thread.run_sync(use_it)
    assert statuses[0] == "Processing started" and statuses[-1] == "Completed"
    assert balance == 5
    with wave.open(str(path)) as sound:
        assert sound.getnframes() > 0


async def test_cli_generate_json_and_exit_codes(live: Live, tmp_path: Path) -> None:
    key = await live.new_key(10)
    env = {**os.environ, "GATEWAY_URL": live.url, "GATEWAY_API_KEY": key}
    out = tmp_path / "song.wav"
    result = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "generate",
            "--model",
            "suno",
            "--json",
            "--output",
            str(out),
            "a short jingle",
        ],
        env=env,
        check=False,
    )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    print(result.stdout.decode())
    assert result.returncode == 0
    assert lines[0]["status"] == "Processing started" and lines[0]["id"] == 1
    assert [line["status"] for line in lines][-2:] == ["Completed", "Downloaded"]
    assert out.stat().st_size > 1000
    broke = await anyio.run_process(
        [sys.executable, "-m", "gateway.cli", "generate", "--model", "suno", "--json", "again"],
        env=env,
        check=False,
    )
    assert broke.returncode == 4
    assert json.loads(broke.stdout.decode())["code"] == "insufficient_tokens"
    bar = await anyio.run_process([sys.executable, "-m", "gateway.cli", "balance"], env=env, check=False)
    assert bar.stdout.decode().strip() == "0"
