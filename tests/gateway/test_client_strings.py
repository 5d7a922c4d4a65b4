"""Every string a client sends is bounded and cleaned, a quote refuses what a create refuses, and the
contract's answers name limits and methods exactly (the hardening probe's findings, each a test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.web.auth import stream_token
from tests.conftest import Harness, bearer, make_settings

pytestmark = pytest.mark.anyio

OPTIONS = {
    "negative_prompt": {"type": "string"},
    "caption": {"type": "string", "max_length": 10},
    "seed": {"type": "integer", "min": 0, "max": 4294967295},
    "width": {"type": "integer", "min": 64, "max": 2048},
    "strength": {"type": "number"},  # no bound: NaN would pass every comparison
}


@pytest.fixture
async def strings(tmp_path: Path) -> Any:
    """The app with `echo` taking string and integer options (its upstream wants widths of 8s)."""
    settings = make_settings(tmp_path, echo={"options": OPTIONS})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, settings)


async def refused(harness: Harness, key: str, body: dict[str, Any], path: str = "/api/generations") -> Any:
    response = await harness.client.post(path, json={"model": "echo", **body}, headers=bearer(key))
    assert response.status_code == 400, response.text
    return response.json()


async def balance(harness: Harness, key: str) -> int:
    return int((await harness.client.get("/api/balance", headers=bearer(key))).json()["token_balance"])


async def test_a_string_option_has_a_length_limit_default_or_declared(strings: Harness) -> None:
    key, _ = await strings.new_key(100)
    body = await refused(strings, key, {"prompt": "x", "options": {"negative_prompt": "n" * 2001}})
    assert body["code"] == "invalid_option" and body["option"] == "negative_prompt"
    assert body["message"] == "Option 'negative_prompt' must be at most 2000 characters."
    body = await refused(strings, key, {"prompt": "x", "options": {"caption": "c" * 11}})
    assert body["message"] == "Option 'caption' must be at most 10 characters."
    ok = await strings.client.post(
        "/api/quote",
        json={
            "model": "echo",
            "prompt": "x",
            "options": {"negative_prompt": "n" * 2000, "caption": "c" * 10},
        },
        headers=bearer(key),
    )
    assert ok.status_code == 200, ok.text
    assert await balance(strings, key) == 100
    spec = (await strings.client.get("/openapi.json")).json()["components"]["schemas"]["Options_echo"]
    published = spec["properties"]["negative_prompt"]["anyOf"][0]
    assert published == {"type": "string", "maxLength": 2000}
    assert spec["properties"]["caption"]["anyOf"][0]["maxLength"] == 10


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\u202e", "\u2066"])
async def test_control_and_bidi_override_characters_are_refused_in_options_and_prompts(
    strings: Harness, character: str
) -> None:
    key, _ = await strings.new_key(100)
    code = f"U+{ord(character):04X}"
    body = await refused(strings, key, {"prompt": "x", "options": {"negative_prompt": f"a{character}b"}})
    assert body["code"] == "invalid_option"
    assert body["message"] == f"Option 'negative_prompt' holds the control character {code}."
    body = await refused(strings, key, {"prompt": f"a{character}b"})
    assert body["message"] == f"`prompt` holds the control character {code}."
    assert await balance(strings, key) == 100


@pytest.mark.parametrize("prompt", ["\u200b\u200b", " \u200d\ufeff ", "\u2060"])
async def test_a_prompt_that_shows_nothing_is_empty(strings: Harness, prompt: str) -> None:
    key, _ = await strings.new_key(100)
    body = await refused(strings, key, {"prompt": prompt})
    assert body == {"status": "Error", "message": "`prompt` must not be empty.", "code": "invalid_request"}
    assert await balance(strings, key) == 100


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook\r\nX-Injected: 1", "https://example.com/ho ok", "https://exa\tmple.com/"],
)
async def test_a_callback_url_with_white_space_or_controls_is_refused_at_create_and_quote(
    strings: Harness, url: str
) -> None:
    key, _ = await strings.new_key(100)
    for path in ("/api/generations", "/api/quote", "/api/generate"):
        body = await refused(strings, key, {"prompt": "x", "callback_url": url}, path)
        assert body["field"] == "callback_url"
        assert body["message"] == "`callback_url` must not hold white space or control characters."
    assert await balance(strings, key) == 100


async def test_a_quote_refuses_what_the_upstream_would_refuse_at_create(strings: Harness) -> None:
    key, _ = await strings.new_key(100)
    created = await refused(strings, key, {"prompt": "x", "options": {"width": 2047}})
    quoted = await refused(strings, key, {"prompt": "x", "options": {"width": 2047}}, "/api/quote")
    assert quoted == created
    assert quoted["code"] == "invalid_option" and quoted["option"] == "width"
    fine = await strings.client.post(
        "/api/quote", json={"model": "echo", "prompt": "x", "options": {"width": 2048}}, headers=bearer(key)
    )
    assert fine.status_code == 200 and fine.json()["sufficient"] is True


async def test_integer_limits_are_written_as_integers(strings: Harness) -> None:
    key, _ = await strings.new_key(100)
    body = await refused(strings, key, {"prompt": "x", "options": {"seed": 2**64}})
    assert body["message"] == "Option 'seed' must be at most 4294967295."


async def test_a_number_of_thousands_of_digits_gets_a_plain_refusal(strings: Harness) -> None:
    key, _ = await strings.new_key(100)
    raw = '{"model": "echo", "prompt": "x", "options": {"seed": ' + "9" * 5000 + "}}"
    response = await strings.client.post(
        "/api/generations",
        content=raw,
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["message"] == "The body holds a number with more digits than any field takes."
    assert "sys.set_int_max_str_digits" not in response.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_allow_names_every_method_a_path_serves(harness: Harness, method: str) -> None:
    response = await harness.client.request(method, "/api/generations")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_a_stream_token_is_accepted_only_as_it_was_minted(harness: Harness) -> None:
    key, _ = await harness.new_key(100)
    created = await harness.client.post(
        "/api/generations", json={"model": "echo", "prompt": "a song"}, headers=bearer(key)
    )
    job_id = created.json()["id"]
    secret = harness.app.state.services.stream_secret
    token = stream_token(secret, job_id, 600)
    expires, _, signature = token.partition(".")
    good = await harness.client.get(f"/api/generations/{job_id}/events?token={token}")
    assert good.status_code == 200
    for altered in (f"0{expires}.{signature}", f"+{expires}.{signature}", f"{expires} .{signature}"):
        response = await harness.client.get(f"/api/generations/{job_id}/events", params={"token": altered})
        assert response.status_code == 401, altered


async def test_a_download_link_is_accepted_only_as_it_was_signed(harness: Harness) -> None:
    results = harness.app.state.services.results
    url = httpx.URL(results.signed_url("job_x", "result-1.wav", 4_000_000_000))
    expires, signature = url.params["expires"], url.params["signature"]
    for altered in (f"0{expires}", f"00{expires}"):
        response = await harness.client.get(url.path, params={"expires": altered, "signature": signature})
        assert response.status_code == 403, altered


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(strings: Harness, constant: str) -> None:
    key, _ = await strings.new_key(100)
    raw = '{"model": "echo", "prompt": "x", "options": {"strength": ' + constant + "}}"
    response = await strings.client.post(
        "/api/generations", content=raw, headers={**bearer(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == f"The body is not valid JSON: {constant} is not a JSON value."
    assert await balance(strings, key) == 100
    listed = await strings.client.get("/api/generations", headers=bearer(key))
    assert listed.status_code == 200 and listed.json()["total"] == 0
