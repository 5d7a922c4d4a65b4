"""`callback_url` host names: resolved and IDNA-normalised at request time, resolved again at each delivery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.contract.errors import InvalidRequest
from gateway.results.addresses import IPAddress
from gateway.results.webhooks import Webhooks, check_callback_url
from gateway.store.db import Database
from tests.conftest import Harness, bearer, make_settings
from tests.gateway.test_generate import assert_error, balance_of, ledger_of

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"
# Names this test resolves itself (no internet needed), as a hostile DNS would answer them.
NAMES = {
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "inside.example": ["93.184.216.34", "10.0.0.7"],  # one private address among public ones is enough
    "cgnat.example": ["100.64.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "v6.example": ["fd00::1"],
    "hooks.example": [PUBLIC],
}


async def resolve(host: str) -> list[IPAddress]:
    return [ip_address(text) for text in NAMES.get(host, [])]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost./hook",
        "http://LOCALHOST/hook",
        "http://127。0。0。1/hook",  # ideographic full stops: IDNA maps them to dots
        "http://100.64.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://127.0.0.1.nip.io/hook",
        "http://127.0.0.1.nip.io./hook",
        "http://inside.example/hook",
        "http://cgnat.example/hook",
        "http://metadata.example/latest/meta-data",
        "http://mapped.example/hook",
        "http://v6.example/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_names_resolving_inside_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_callback_url(url, allow_private=False, resolve=resolve)
    assert refused.value.extra["field"] == "callback_url"


async def test_public_and_unresolvable_names_pass_at_request_time() -> None:
    await check_callback_url("https://hooks.example/x", allow_private=False, resolve=resolve)
    # unresolvable now: let through, and checked again at every delivery
    await check_callback_url("https://not-yet.example/x", allow_private=False, resolve=resolve)


@pytest.fixture
async def resolving(tmp_path: Path) -> AsyncIterator[Harness]:
    app = create_app(make_settings(tmp_path), resolve=resolve)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, app.state.services.settings)


@pytest.mark.parametrize("path", ["/api/generate", "/api/generations", "/api/quote"])
async def test_a_name_resolving_to_loopback_is_400_and_nothing_is_debited(
    resolving: Harness, path: str
) -> None:
    key, _ = await resolving.new_key(100)
    body = {"model": "echo", "prompt": "x", "callback_url": "http://127.0.0.1.nip.io/hook"}
    refused = assert_error(
        await resolving.client.post(path, json=body, headers=bearer(key)), 400, "invalid_request"
    )
    assert refused["field"] == "callback_url"
    assert await balance_of(resolving, key) == 100
    assert len(await ledger_of(resolving, key)) == 1


async def test_quote_accepts_what_create_accepts(resolving: Harness) -> None:
    key, _ = await resolving.new_key(100)
    body = {"model": "echo", "prompt": "x", "callback_url": "https://hooks.example/x"}
    quote = await resolving.client.post("/api/quote", json=body, headers=bearer(key))
    assert quote.status_code == 200 and quote.json()["cost"] == 10


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


async def deliveries(tmp_path: Path, answers: list[list[str]], url: str) -> tuple[bool, Recorder]:
    """Deliver one job's webhook with a resolver that gives `answers` in turn, one per lookup."""
    from gateway import store
    from gateway.store import jobs as job_store
    from gateway.store.job_records import NewJob
    from gateway.store.keys import create

    settings = make_settings(tmp_path)
    db: Database = store.connect(settings)
    await db.open()
    recorder = Recorder()

    async def turning(host: str) -> list[IPAddress]:
        return [ip_address(text) for text in answers.pop(0)] if answers else []

    hooks = Webhooks(
        db,
        b"s",
        lambda job: {"id": job.id},
        allow_private=False,
        base_delay=0,
        max_attempts=1,
        resolve=turning,
        transport=recorder,
    )
    try:
        key = await create(db, key_hash="h", prefix="p", name="n", tokens=10)
        job, _ = await job_store.create(
            db, NewJob(key.id, "echo", "echo", "scripted", "x", "x", None, {}, 1, callback_url=url)
        )
        delivered = await hooks.deliver(job)
    finally:
        await hooks.aclose()
        await db.close()
    return delivered, recorder


async def test_delivery_goes_to_the_address_it_checked(tmp_path: Path) -> None:
    delivered, recorder = await deliveries(tmp_path, [[PUBLIC]], "https://Hooks.Example:8443/h?x=1")
    assert delivered
    [sent] = recorder.requests
    assert sent.url.host == PUBLIC and sent.url.port == 8443 and sent.url.path == "/h"
    assert sent.headers["host"] == "hooks.example:8443"
    assert sent.extensions["sni_hostname"] == "hooks.example"
    assert set(json.loads(sent.content)) == {"id"}


async def test_a_name_rebound_to_loopback_after_the_request_is_not_called(tmp_path: Path) -> None:
    # At request time it resolved outside; by delivery it resolves to loopback (DNS rebinding).
    delivered, recorder = await deliveries(tmp_path, [["127.0.0.1"]], "http://rebinding.example/h")
    assert not delivered and recorder.requests == []
