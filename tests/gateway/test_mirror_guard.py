"""Result mirroring never fetches from inside the operator's network: loopback, private, link-local
(metadata), CGNAT — directly, by a name, or through a redirect — except from the provider's own host."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from gateway.contract.errors import InvalidRequest
from gateway.results.addresses import IPAddress, internal
from gateway.results.files import MirrorError, ResultStore, check_peer
from gateway.results.webhooks import check_callback_url
from gateway.storage.folder import FolderStorage
from tests.conftest import Harness, bearer, make_settings
from tests.sse import parse

pytestmark = pytest.mark.anyio

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)
OWN = "http://127.0.0.1:8188"


@asynccontextmanager
async def gateway(tmp_path: Path, **scripted: Any) -> AsyncIterator[Harness]:
    from gateway.app import create_app

    settings = make_settings(tmp_path, scripted={"passthrough": False, "base_url": OWN, **scripted})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, settings)


async def generate(harness: Harness, result_url: str) -> tuple[dict[str, Any], int]:
    key, _ = await harness.new_key(100)
    response = await harness.client.post(
        "/api/generate", json={"model": "echo", "prompt": f"a song result={result_url}"}, headers=bearer(key)
    )
    balance = (await harness.client.get("/api/balance", headers=bearer(key))).json()["token_balance"]
    return [event for _, event in parse(response.text)][-1], balance


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/out.wav", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/out.wav"],
)
async def test_a_result_on_an_internal_address_fails_the_job_refunded_and_is_never_asked(
    tmp_path: Path, httpx_mock: HTTPXMock, url: str
) -> None:
    async with gateway(tmp_path) as harness:
        last, balance = await generate(harness, url)
    assert last["status"] == "Error" and last["code"] == "result_unavailable" and last["refunded"] is True
    assert balance == 100
    assert httpx_mock.get_requests() == []


async def test_a_public_result_that_redirects_inside_is_refused_at_the_hop(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url="https://cdn.example/out.wav", status_code=302, headers={"Location": "http://127.0.0.1:9/out.wav"}
    )
    async with gateway(tmp_path) as harness:
        last, balance = await generate(harness, "https://cdn.example/out.wav")
    assert last["status"] == "Error" and last["code"] == "result_unavailable" and last["refunded"] is True
    assert balance == 100
    assert [str(r.url) for r in httpx_mock.get_requests()] == ["https://cdn.example/out.wav"]


async def test_a_result_from_the_providers_own_local_host_is_mirrored(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{OWN}/view?filename=out.wav", content=WAV, headers={"Content-Type": "audio/wav"}
    )
    async with gateway(tmp_path) as harness:
        last, balance = await generate(harness, f"{OWN}/view?filename=out.wav")
        assert last["status"] == "Completed", last
        download = await harness.client.get(last["url"].removeprefix("http://testserver"))
    assert download.status_code == 200 and download.content == WAV
    assert balance == 90


async def test_a_public_result_that_redirects_to_a_public_cdn_is_mirrored(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url="https://api.example/out.wav", status_code=307, headers={"Location": "https://cdn.example/o.wav"}
    )
    httpx_mock.add_response(
        url="https://cdn.example/o.wav", content=WAV, headers={"Content-Type": "audio/wav"}
    )
    async with gateway(tmp_path) as harness:
        last, _ = await generate(harness, "https://api.example/out.wav")
    assert last["status"] == "Completed", last


# --- the store on its own, with a resolver standing in for DNS ---------------------------------------


NAMES = {
    "media.public.test": [ipaddress.ip_address("93.184.216.34")],
    "rebound.public.test": [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.1.2.3")],
}


async def fake_resolve(host: str) -> list[IPAddress]:
    return NAMES.get(host, [])


def store(tmp_path: Path) -> ResultStore:
    return ResultStore(
        FolderStorage(tmp_path / "files"),
        b"k" * 32,
        "http://testserver",
        max_bytes=1 << 20,
        staging=tmp_path / "staging",
        resolver=fake_resolve,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://rebound.public.test/out.wav",  # one of its addresses is private
        "http://localhost:8000/out.wav",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:127.0.0.1]/out.wav",  # loopback wrapped in IPv6
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://2130706433/out.wav",  # 127.0.0.1 written as one number
        "file:///etc/passwd",
    ],
)
async def test_the_store_refuses_urls_that_lead_inside(
    tmp_path: Path, httpx_mock: HTTPXMock, url: str
) -> None:
    results = store(tmp_path)
    with pytest.raises(MirrorError):
        await results.mirror("job_a", [url], 2_000_000_000)
    assert httpx_mock.get_requests() == []
    await results.aclose()


async def test_the_own_host_may_not_redirect_elsewhere_inside(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{OWN}/view", status_code=302, headers={"Location": "http://10.9.9.9/x.wav"})
    results = store(tmp_path)
    with pytest.raises(MirrorError, match="private"):
        await results.mirror("job_a", [f"{OWN}/view"], 2_000_000_000, trusted=[f"{OWN}/api"])
    assert len(httpx_mock.get_requests()) == 1
    await results.aclose()


async def test_redirects_end_after_five_hops(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="http://media.public.test/loop", status_code=302, headers={"Location": "/loop"}, is_reusable=True
    )
    results = store(tmp_path)
    with pytest.raises(MirrorError, match="redirected more than 5 times"):
        await results.mirror("job_a", ["http://media.public.test/loop"], 2_000_000_000)
    assert len(httpx_mock.get_requests()) == 6
    await results.aclose()


async def test_a_public_name_is_fetched(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="http://media.public.test/a.wav", content=WAV, headers={"Content-Type": "audio/wav"}
    )
    results = store(tmp_path)
    urls, content_type = await results.mirror("job_a", ["http://media.public.test/a.wav"], 2_000_000_000)
    assert content_type == "audio/wav" and len(urls) == 1
    await results.aclose()


# --- one classification for results and callbacks ---------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200",
     "192.0.0.192", "0.0.0.0", "::1", "fe80::1", "fd00:ec2::254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
     "2002:7f00:1::1"],
)  # fmt: skip
def test_internal_addresses(address: str) -> None:
    assert internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses(address: str) -> None:
    assert not internal(ipaddress.ip_address(address))


@pytest.mark.anyio
async def test_callback_urls_use_the_same_classification() -> None:
    with pytest.raises(InvalidRequest):
        await check_callback_url("http://100.64.0.1/hook", allow_private=False)
    with pytest.raises(InvalidRequest):
        await check_callback_url("http://[::ffff:169.254.169.254]/hook", allow_private=False)
    await check_callback_url("https://93.184.216.34/hook", allow_private=False)


class Peer:
    """A network stream as httpcore hands it out, connected to `address`."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str) -> Any:
        return (self.address, 443) if name == "server_addr" else None


def test_the_address_connected_to_is_checked_again_before_the_body_is_read() -> None:
    # A name checked as public that resolved inside at connect time (DNS rebinding).
    with pytest.raises(MirrorError):
        check_peer(httpx.Response(200, extensions={"network_stream": Peer("127.0.0.1")}))
    check_peer(httpx.Response(200, extensions={"network_stream": Peer("93.184.216.34")}))
    check_peer(httpx.Response(200))  # no stream to ask (a mocked transport)
