"""X-RateLimit-* headers on every answer to a request with a valid key, whatever the answer."""

from __future__ import annotations

import pytest

from tests.conftest import Harness, admin_headers, bearer

pytestmark = pytest.mark.anyio

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/balance", 200),
        ("DELETE", "/api/balance", 405),
        ("PUT", "/api/generations", 405),
        ("GET", "/api/generate", 405),
        ("PATCH", "/api/generations/job_nope/cancel", 405),
        ("GET", "/api/nothing-here", 404),
        ("GET", "/api/generations/job_nope", 404),
        ("GET", "/api/ledger?limit=0", 400),
        ("POST", "/api/generations", 415),
        ("GET", "/files/job_nope/x.wav?expires=1&signature=00", 403),
    ],
)
async def test_every_answer_to_a_keyed_request_has_the_headers(
    harness: Harness, method: str, path: str, status: int
) -> None:
    key, _ = await harness.new_key(100, rate_limit_per_minute=7)
    response = await harness.client.request(method, path, headers=bearer(key))
    assert response.status_code == status, response.text
    assert all(name in response.headers for name in RATE_HEADERS), response.headers
    assert response.headers["x-ratelimit-limit"] == "7"
    if status >= 400:
        assert response.json()["status"] == "Error"


@pytest.mark.parametrize("headers", [{}, bearer("gw_not_a_key"), admin_headers()])
async def test_no_headers_without_a_valid_key(harness: Harness, headers: dict[str, str]) -> None:
    response = await harness.client.delete("/api/balance", headers=headers)
    assert response.status_code == 405
    assert not any(name in response.headers for name in RATE_HEADERS)
