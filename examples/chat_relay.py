"""Relay a job's progress to a chat's incoming webhook, editing one message in place where the chat allows.

    GATEWAY_URL=http://127.0.0.1:8000 GATEWAY_API_KEY=gw_... \\
    python -m examples.chat_relay --webhook https://discord.com/api/webhooks/ID/TOKEN --model suno "a sea shanty"

Discord-style webhooks (`?wait=true` returns the message; `PATCH …/messages/{id}` edits it) get one
message that updates as the job advances, showing the live preview (an image embed of the latest
frame, or a link to the audio while it renders) when the job has one. Slack-style incoming webhooks
cannot edit, so each step is posted as its own line, at most one per `--min-interval` seconds and
only on a change of status, of at least `--step` percent, or of the preview.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Literal

import anyio
import httpx

from gateway_client import AsyncGateway, GatewayError, JobEvent

Flavor = Literal["discord", "slack"]


def render(event: JobEvent, prompt: str) -> str:
    """One line a person can read at a glance."""
    if event.status == "Completed":
        return f"✅ Done: {prompt!r}\n{event.url}"
    if event.status == "Error":
        return f"❌ Failed: {event.message} (tokens refunded)"
    if event.status == "Canceled":
        return "🚫 Cancelled (tokens refunded)"
    if event.status == "Queued":
        where = f" — position {event.position}" if event.position is not None else ""
        return f"⏳ Queued{where}: {prompt!r}"
    percent = event.progress or 0
    bar = "█" * (percent // 10) + "░" * (10 - percent // 10)
    return f"🎬 {event.status} {bar} {percent}%: {prompt!r}"


def is_stream(preview_url: str) -> bool:
    """A preview is an image frame, or (a `/stream` link) audio that plays while it renders."""
    return httpx.URL(preview_url).path.endswith("/stream")


class ChatWebhook:
    def __init__(self, url: str, flavor: Flavor, http: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        self.flavor = flavor
        self.http = http
        self.message_id: str | None = None

    async def show(self, text: str, preview_url: str | None = None) -> None:
        """Post or edit the message; with a preview, an image embed (Discord) or a link to listen to."""
        if preview_url and is_stream(preview_url):
            text, preview_url = f"{text}\n🔊 Listen while it renders: {preview_url}", None
        if self.flavor == "slack":
            body: dict[str, Any] = {"text": text}
            if preview_url:
                body["blocks"] = [
                    {"type": "section", "text": {"type": "plain_text", "text": text}},
                    {"type": "image", "image_url": preview_url, "alt_text": "live preview"},
                ]
            (await self.http.post(self.url, json=body)).raise_for_status()
            return
        body = {"content": text, "embeds": [{"image": {"url": preview_url}}] if preview_url else []}
        if self.message_id is None:
            response = await self.http.post(self.url, params={"wait": "true"}, json=body)
            response.raise_for_status()
            self.message_id = str(response.json()["id"])
        else:
            url = f"{self.url}/messages/{self.message_id}"
            (await self.http.patch(url, json=body)).raise_for_status()


async def relay(
    gateway: AsyncGateway,
    chat: ChatWebhook,
    model: str,
    prompt: str,
    *,
    style: str | None = None,
    step: int = 10,
    min_interval: float = 2.0,
) -> JobEvent | None:
    """Follow the job and show its steps in the chat; returns the terminal event."""
    shown_status, shown_percent, shown_at = "", -step, 0.0
    preview: str | None = None
    shown_preview: str | None = None
    final: JobEvent | None = None
    async for event in gateway.generate(model, prompt, style=style):
        final = event
        preview = None if event.terminal else event.preview_url or preview  # kept until a newer one
        percent = event.progress or 0
        changed = event.status != shown_status or percent - shown_percent >= step or preview != shown_preview
        due = time.monotonic() - shown_at >= min_interval
        if event.terminal or (changed and (due or chat.flavor == "discord")):
            await chat.show(render(event, prompt), preview)
            shown_status, shown_percent, shown_at = event.status, percent, time.monotonic()
            shown_preview = preview
    return final


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prompt")
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--flavor", choices=["discord", "slack"], default="discord")
    parser.add_argument("--model", required=True)
    parser.add_argument("--style", default=None)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--min-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    async with AsyncGateway() as gateway, httpx.AsyncClient(timeout=10) as http:
        chat = ChatWebhook(args.webhook, args.flavor, http)
        try:
            final = await relay(
                gateway,
                chat,
                args.model,
                args.prompt,
                style=args.style,
                step=args.step,
                min_interval=args.min_interval,
            )
        except GatewayError as exc:
            await chat.show(f"❌ The gateway refused: {exc.message}")
            return 2
    return 0 if final is not None and final.status == "Completed" else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
