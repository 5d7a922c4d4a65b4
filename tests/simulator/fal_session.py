"""fal-client against `gateway simulator --tls`, configured only by the environment the simulator prints
(SSL_CERT_FILE, FAL_QUEUE_RUN_HOST) plus FAL_KEY: run as `python -m tests.simulator.fal_session` in a
fresh interpreter, because fal-client reads FAL_QUEUE_RUN_HOST once, when it is imported."""

from __future__ import annotations

import os

import anyio
import fal_client
import fal_client.client

MODEL = "fal-ai/pika/v2.2/text-to-video"
POLL = 0.02


async def session() -> None:
    # Nothing may leave the machine: the queue URL must be the simulator's.
    assert fal_client.client.QUEUE_URL_FORMAT == f"https://{os.environ['FAL_QUEUE_RUN_HOST']}/"
    assert fal_client.client.QUEUE_URL_FORMAT.startswith("https://127.0.0.1:")
    client = fal_client.AsyncClient()  # the key comes from FAL_KEY
    updates: list[fal_client.Status] = []
    result = await client.subscribe(
        MODEL,
        {"prompt": "a fox", "duration": 5},
        with_logs=True,
        interval=POLL,
        on_queue_update=updates.append,
    )
    assert result["video"]["url"].startswith("https://127.0.0.1:") and result["video"]["url"].endswith(
        ".webm"
    )
    assert result["video"]["content_type"] == "video/webm"
    assert isinstance(updates[-1], fal_client.Completed) and updates[-1].logs

    handle = await client.submit(MODEL, {"prompt": "a second fox"})
    rebuilt = await client.get_handle(MODEL, handle.request_id)  # fal-client's own URL layout
    assert (rebuilt.status_url, rebuilt.response_url, rebuilt.cancel_url) == (
        handle.status_url,
        handle.response_url,
        handle.cancel_url,
    )
    assert isinstance(
        await client.status(MODEL, handle.request_id), fal_client.Queued | fal_client.InProgress
    )
    await client.cancel(MODEL, handle.request_id)
    cancelled = await handle.status()
    assert isinstance(cancelled, fal_client.Completed) and cancelled.error

    failing = await client.submit(MODEL, {"prompt": "a fox sim:fail"})
    try:
        await failing.get(interval=POLL)
    except fal_client.client.FalClientHTTPError as failure:
        assert failure.status_code == 422 and failure.error_type == "generation_failed"
    else:
        raise AssertionError("a sim:fail request must not have a result")

    try:
        await client.submit(MODEL, {"prompt": "a fox sim:reject"})
    except fal_client.client.FalClientHTTPError as rejected:
        assert rejected.status_code == 500, rejected.status_code
    else:
        raise AssertionError("a sim:reject submit must be refused")

    retried = await client.submit(MODEL, {"prompt": "busy sim:429"})  # fal-client retries the 429 itself
    assert retried.request_id


if __name__ == "__main__":
    anyio.run(session)
    print("fal-client session passed")
