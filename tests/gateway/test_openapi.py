"""/openapi.json is valid OpenAPI 3.1 and describes every route the app serves."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from tests.conftest import Harness

pytestmark = pytest.mark.anyio


async def test_openapi_is_valid_and_complete(harness: Harness) -> None:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    for route in harness.app.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert route.path in spec["paths"], route.path
        assert methods <= set(spec["paths"][route.path]), (route.path, methods)
    generate = spec["paths"]["/api/generate"]["post"]["responses"]
    assert {"200", "400", "401", "403", "413", "415", "418", "429", "503"} <= set(generate)
    assert "Event" in spec["components"]["schemas"] and "Error" in spec["components"]["schemas"]
