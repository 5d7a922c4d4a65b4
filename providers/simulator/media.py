"""The result files the simulated upstreams hand out: a WAV tune, a PNG gradient, a short WebM clip."""

from __future__ import annotations

import array
import io
import math
import re
import struct
import wave
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from providers.simulator.timeline import parse_task_id

VIDEO_FILE = Path(__file__).parent / "media" / "sample.webm"
CONTENT_TYPES = {"wav": "audio/wav", "png": "image/png", "webm": "video/webm"}
SAMPLE_RATE = 22050
NOTES = (523.25, 659.25, 783.99, 1046.5)  # C5 E5 G5 C6, half a second each
NOTE_SECONDS = 0.5
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@cache
def wav_bytes() -> bytes:
    """Two seconds of a rising arpeggio, 16-bit mono PCM, with short fades so it never clicks."""
    per_note = int(SAMPLE_RATE * NOTE_SECONDS)
    fade = SAMPLE_RATE // 100
    samples = array.array("h")
    for frequency in NOTES:
        for i in range(per_note):
            envelope = min(1.0, i / fade, (per_note - i) / fade)
            samples.append(int(12000 * envelope * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(SAMPLE_RATE)
        sound.writeframes(samples.tobytes())
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(size: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """A size×size RGB PNG of `pixel(x, y)`."""
    rows = b"".join(b"\x00" + bytes(c for x in range(size) for c in pixel(x, y)) for y in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def _gradient(size: int, x: int, y: int) -> tuple[int, int, int]:
    return x * 255 // size, y * 255 // size, 160


@cache
def png_bytes(size: int = 64) -> bytes:
    """A size×size RGB gradient."""
    return _png(size, lambda x, y: _gradient(size, x, y))


@cache
def preview_png(step: int, steps: int, size: int = 32) -> bytes:
    """A live preview of the gradient: grey at first, the gradient's colours by the last step."""
    share = step / steps

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        r, g, b = (round(c * share + 128 * (1 - share)) for c in _gradient(size, x, y))
        return r, g, b

    return _png(size, pixel)


class Library:
    """The files by extension; the video is read from disk once, off the event loop."""

    def __init__(self) -> None:
        self._video: bytes | None = None

    async def bytes_for(self, extension: str) -> bytes:
        if extension == "wav":
            return wav_bytes()
        if extension == "png":
            return png_bytes()
        if self._video is None:
            self._video = await anyio.Path(VIDEO_FILE).read_bytes()
        return self._video


def ranged(request: Request, data: bytes, content_type: str) -> Response:
    """The bytes, honouring a single `Range: bytes=a-b` so browsers can seek."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "public, max-age=86400"}
    requested = RANGE.fullmatch(request.headers.get("range", "").strip())
    if not requested or requested.groups() == ("", ""):
        return Response(data, media_type=content_type, headers=headers)
    first, last = requested.groups()
    size = len(data)
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    else:
        start, end = max(0, size - int(last)), size - 1
    if start > end or start >= size:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, media_type=content_type, headers=headers)


def routes() -> list[BaseRoute]:
    library = Library()

    async def serve(request: Request) -> Response:
        stem, _, extension = request.path_params["name"].rpartition(".")
        if extension not in CONTENT_TYPES or (stem != "sample" and parse_task_id(stem) is None):
            return JSONResponse({"error": "not found"}, status_code=404)
        return ranged(request, await library.bytes_for(extension), CONTENT_TYPES[extension])

    return [Route("/{name}", serve, methods=["GET", "HEAD"])]
