"""Properties: whatever a client (or an upstream) sends, the SSE encoder, the signature and token checks
and request validation give a contract answer, never an exception."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.contract.errors import ApiError, InvalidRequest, RangeNotSatisfiable
from gateway.contract.parsing import whole_number
from gateway.jobs.catalog import Catalog, GenerationRequest
from gateway.results import callbacks
from gateway.results.addresses import IPAddress
from gateway.results.files import ResultStore
from gateway.results.webhooks import signature_header, verify_signature
from gateway.storage.http import check_range
from gateway.store.event_records import Event
from gateway.web import auth
from tests.conftest import admin_headers, make_settings
from tests.sse import parse

SECRET = b"property-secret"
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone UTF-16 surrogates included (JSON from an upstream may escape them: "\ud800").
ANY_TEXT = st.text(st.characters(codec=None, categories=None))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
DIGITS = st.text("0123456789", min_size=1, max_size=6000)


# --- the SSE encoder -------------------------------------------------------------------------------


@QUICK
@given(
    seq=st.integers(1, 2**53),
    data=st.dictionaries(ANY_TEXT, JSON, max_size=5),
    retry=st.none() | st.integers(0, 10**6),
)
@example(seq=1, data={"message": "line\nbreak\r\u2028\x00", "x": "\ud800"}, retry=None)
def test_any_event_is_one_sse_event_that_reads_back(
    seq: int, data: dict[str, Any], retry: int | None
) -> None:
    event = Event("job_x", seq, {"status": "Processing", **data})
    wire = event.sse(retry).encode()  # UTF-8 on the wire, whatever the text held
    text = wire.decode()
    assert text.endswith("\n\n") and text.count("\n\n") == 1, text
    assert [line.split(":")[0] for line in text.strip("\n").split("\n")] == (
        ["id", "data"] if retry is None else ["id", "retry", "data"]
    )
    [(read_id, read_data)] = parse(text)
    assert read_id == seq
    assert read_data == json.loads(event.encoded)


# --- signatures and tokens -------------------------------------------------------------------------


@QUICK
@given(job_id=ANY_TEXT, token=ANY_TEXT)
@example(job_id="job_x", token="1.\u00e9")
@example(job_id="job_x", token="9" * 5000 + ".x")
def test_any_stream_token_is_a_yes_or_no(job_id: str, token: str) -> None:
    assert auth.check_stream_token(SECRET, job_id, token) is False


@QUICK
@given(job_id=st.text(min_size=1), ttl=st.integers(1, 10**6))
def test_only_the_minted_token_opens_its_own_job(job_id: str, ttl: int) -> None:
    token = auth.stream_token(SECRET, job_id, ttl)
    assert auth.check_stream_token(SECRET, job_id, token)
    assert not auth.check_stream_token(SECRET, job_id + "x", token)
    assert not auth.check_stream_token(b"other", job_id, token)


@QUICK
@given(body=st.binary(max_size=64), header=ANY_TEXT)
@example(body=b"{}", header="t=1,v1=\u00e3")
@example(body=b"{}", header="t=" + "1" * 5000 + ",v1=00")
def test_any_webhook_signature_header_is_a_yes_or_no(body: bytes, header: str) -> None:
    assert verify_signature(SECRET, body, header) is False


@QUICK
@given(body=st.binary(max_size=64))
def test_a_fresh_webhook_signature_verifies(body: bytes) -> None:
    header = signature_header(SECRET, body, int(time.time()))
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b"x", header)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultStore]:
    from gateway.storage.folder import FolderStorage

    folder = tmp_path_factory.mktemp("results")
    store = ResultStore(
        FolderStorage(folder / "files"), SECRET, "http://t", max_bytes=1, staging=folder / "staging"
    )
    yield store
    anyio.run(store.aclose)


@QUICK
@given(job_id=ANY_TEXT, name=ANY_TEXT, expires=st.none() | ANY_TEXT | DIGITS, signature=st.none() | ANY_TEXT)
@example(job_id="job_x", name="a.wav", expires="1", signature="%C3%A3")
def test_any_download_link_is_a_contract_answer(
    results: ResultStore, job_id: str, name: str, expires: str | None, signature: str | None
) -> None:
    try:
        results.verify(job_id, name, expires, signature)
    except ApiError as refused:
        assert refused.status_code in (403, 404, 410)


@QUICK
@given(header=st.none() | ANY_TEXT | st.builds(lambda a, b: f"bytes={a}-{b}", DIGITS | st.just(""), DIGITS))
@example(header="bytes=" + "1" * 5000 + "-")
@example(header="bytes=-" + "9" * 5000)
@example(header="bytes=٣-")
def test_any_range_header_is_served_ignored_or_416(header: str | None) -> None:
    try:
        verdict = check_range(header, 1000)
    except RangeNotSatisfiable as refused:
        assert refused.body()["size"] == 1000
    else:
        assert verdict in ("ok", "ignore")


# --- request validation ----------------------------------------------------------------------------


@QUICK
@given(text=st.none() | ANY_TEXT | DIGITS)
def test_whole_numbers_are_bounded_ascii_digits(text: str | None) -> None:
    number = whole_number(text)
    if number is not None:
        assert text is not None and text.isascii() and str(number) == text.lstrip("0").rjust(1, "0")
        assert number < 10**19


@QUICK
@given(url=ANY_TEXT | st.builds(lambda host: f"http://{host}/h", ANY_TEXT))
@example(url="http://127。0。0。1/h")
@example(url="http://[::1/h")
@example(url="http://\udcff/h")
def test_any_callback_url_is_accepted_or_400(url: str) -> None:
    async def nowhere(host: str) -> list[IPAddress]:
        return []

    try:
        anyio.run(lambda: callbacks.check(url, allow_private=False, resolve=nowhere))
    except InvalidRequest as refused:
        assert refused.body()["field"] == "callback_url"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog(make_settings(tmp_path_factory.mktemp("catalog")))


GENERATE_BODY = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["suno", "pika", "run", "luma", "local", "echo"]) | JSON,
        "prompt": ANY_TEXT | JSON,
        "style": st.sampled_from(["1", "anime", ""]) | JSON,
        "options": st.dictionaries(st.sampled_from(["duration", "seed", "width", "x"]), JSON) | JSON,
        "callback_url": ANY_TEXT | JSON,
    },
)


@QUICK
@given(body=JSON | GENERATE_BODY)
def test_any_generate_body_validates_or_is_a_400(catalog: Catalog, body: Any) -> None:
    try:
        request = catalog.validate(body)
    except ApiError as refused:
        assert refused.status_code == 400
        assert refused.code in ("invalid_request", "unknown_model", "invalid_style", "invalid_option")
    else:
        assert isinstance(request, GenerationRequest) and request.prompt.strip()
        catalog.price(request.model, request.options)


# --- the same through the app: any body, any header -> a contract answer --------------------------


@dataclass
class Client:
    """The app over ASGI, driven from synchronous hypothesis tests through a portal's event loop."""

    portal: BlockingPortal
    http: httpx.AsyncClient
    key: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.portal.call(lambda: self.http.request(method, path, **kwargs))
        return response


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    app = create_app(make_settings(tmp_path_factory.mktemp("app"), default_rate_limit_per_minute=10**9))
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        created = portal.call(
            lambda: http.post(
                "/admin/keys",
                json={"name": "p", "tokens": 10**12, "max_concurrent_jobs": 10**6},
                headers=admin_headers(),
            )
        )
        yield Client(portal, http, created.json()["key"])
        portal.call(http.aclose)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=300) | (JSON | GENERATE_BODY).map(lambda value: json.dumps(value).encode()),
    content_type=st.sampled_from(["application/json", "text/plain", "application/problem+json", ""]),
    last_event_id=st.none() | st.text("0123456789 x-", max_size=30) | DIGITS,
)
def test_any_request_gets_a_contract_answer(
    client: Client, body: bytes, content_type: str, last_event_id: str | None
) -> None:
    assume(b"hold" not in body)  # the scripted provider would wait for a release that never comes
    headers = {"Authorization": f"Bearer {client.key}", "Content-Type": content_type}
    answer = client.request("POST", "/api/generations", content=body, headers=headers)
    # 503: the shipped models' providers have no credentials here (the contract's provider_unavailable)
    assert answer.status_code in (202, 400, 413, 415, 503), answer.text
    job = answer.json()
    if answer.status_code != 202:
        assert job["status"] == "Error" and job["code"] and job["message"]
        assert answer.status_code != 503 or job["code"] == "provider_unavailable"
        return
    events_headers = {"Authorization": f"Bearer {client.key}"}
    if last_event_id is not None:
        events_headers["Last-Event-ID"] = last_event_id
    events = client.request("GET", f"/api/generations/{job['id']}/cancel", headers=events_headers)
    assert events.status_code == 405 and events.json()["code"] == "method_not_allowed"
    resumed = client.request(
        "GET", f"/api/generations/{job['id']}/events", headers=events_headers, params={"token": "x"}
    )
    assert resumed.status_code in (200, 204, 400), resumed.text
