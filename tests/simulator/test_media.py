"""The media files are what they claim to be, with the right headers and byte ranges."""

from __future__ import annotations

import io
import struct
import wave
import zlib

import pytest

from providers.simulator.timeline import Flag, new_task_id
from tests.simulator.conftest import Sim

pytestmark = pytest.mark.anyio


async def test_wav_plays(sim: Sim) -> None:
    response = await sim.client.get("/media/sample.wav")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert int(response.headers["content-length"]) == len(response.content)
    with wave.open(io.BytesIO(response.content)) as sound:
        assert sound.getnchannels() == 1 and sound.getsampwidth() == 2
        assert 1.5 <= sound.getnframes() / sound.getframerate() <= 3
        assert max(sound.readframes(2000)) > 0  # not silence


async def test_png_is_a_64_square(sim: Sim) -> None:
    response = await sim.client.get("/media/sample.png")
    assert response.headers["content-type"] == "image/png"
    data = response.content
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (64, 64, 8, 2)
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    assert data.endswith(b"IEND\xaeB`\x82")


async def test_video_is_a_small_webm(sim: Sim) -> None:
    response = await sim.client.get("/media/sample.webm")
    assert response.headers["content-type"] == "video/webm"
    assert response.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML magic
    assert b"webm" in response.content[:64] and b"V_VP9" in response.content
    assert 1000 < len(response.content) < 50_000


async def test_task_urls_and_ranges(sim: Sim) -> None:
    stem = new_task_id(1_790_000_000_000, Flag.NONE)
    whole = (await sim.client.get(f"/media/{stem}.wav")).content
    part = await sim.client.get(f"/media/{stem}.wav", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == whole[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(whole)}"
    tail = await sim.client.get(f"/media/{stem}.wav", headers={"Range": "bytes=-4"})
    assert tail.content == whole[-4:]
    beyond = await sim.client.get(f"/media/{stem}.wav", headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416
    assert (await sim.client.get("/media/unknown.wav")).status_code == 404
    assert (await sim.client.get("/media/sample.exe")).status_code == 404
