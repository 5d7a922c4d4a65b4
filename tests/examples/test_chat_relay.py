"""The chat relay against a loopback Discord/Slack-style receiver and the gateway app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.chat_relay import ChatWebhook, relay
from gateway_client import AsyncGateway
from tests.conftest import Harness
from tests.servers import serving

pytestmark = pytest.mark.anyio


def receiver(log: list[tuple[str, dict[str, Any]]]) -> Starlette:
    async def create(request: Request) -> Response:
        body = await request.json()
        log.append(("POST", body))
        if request.query_params.get("wait") == "true":
            return JSONResponse({"id": "1001", "content": body.get("content")})
        return Response(status_code=204)

    async def edit(request: Request) -> Response:
        log.append((f"PATCH {request.path_params['message_id']}", await request.json()))
        return JSONResponse({"id": request.path_params["message_id"]})

    return Starlette(
        routes=[
            Route("/hook", create, methods=["POST"]),
            Route("/hook/messages/{message_id}", edit, methods=["PATCH"]),
        ]
    )


async def run_relay(
    harness: Harness, flavor: str, prompt: str
) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    key, _ = await harness.new_key(100)
    log: list[tuple[str, dict[str, Any]]] = []
    async with serving(receiver(log), lifespan="off") as url:
        gateway = AsyncGateway("http://testserver", key, transport=httpx.ASGITransport(app=harness.app))
        async with gateway, httpx.AsyncClient() as http:
            final = await relay(
                gateway, ChatWebhook(f"{url}/hook", flavor, http), "echo", prompt, min_interval=0
            )  # type: ignore[arg-type]
    return log, final


async def test_discord_style_edits_one_message_in_place(harness: Harness) -> None:
    log, final = await run_relay(harness, "discord", "a song")
    assert final.status == "Completed"
    assert [method for method, _ in log].count("POST") == 1 and log[0][0] == "POST"
    assert all(method == "PATCH 1001" for method, _ in log[1:]) and len(log) >= 3
    assert final.url in log[-1][1]["content"] and log[-1][1]["content"].startswith("✅")
    assert any("25%" in body["content"] for _, body in log)


async def test_slack_style_posts_each_step(harness: Harness) -> None:
    log, final = await run_relay(harness, "slack", "fail")
    assert final.status == "Error"
    assert all(method == "POST" and "text" in body for method, body in log)
    assert "refunded" in log[-1][1]["text"]


async def test_discord_style_shows_the_live_preview_in_the_message(harness: Harness) -> None:
    log, final = await run_relay(harness, "discord", "a song with a preview")
    assert final.status == "Completed"
    frames = [body["embeds"][0]["image"]["url"] for _, body in log if body.get("embeds")]
    assert frames and all("/files/" in url and "/preview." in url for url in frames)
    listen = [body["content"] for _, body in log if "Listen while it renders" in body["content"]]
    assert listen and "/stream?src=" in listen[0]
    assert log[-1][1]["embeds"] == []  # the finished message shows the result, not a stale frame
