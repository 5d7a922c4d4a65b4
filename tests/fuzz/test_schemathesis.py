"""Schemathesis over the live gateway's own /openapi.json: every operation with valid and invalid data,
then stateful runs along the document's links. No answer may be a 5xx, every error must be the
contract's JSON, and every answer must match what the document says."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.specs.openapi import checks as openapi_checks

from tests.conftest import ADMIN
from tests.fuzz.conftest import LiveGateway, funded_key

pytestmark = pytest.mark.e2e

# About a minute in all on a loaded CI machine: every operation × both modes, then the stateful runs.
# FUZZ_SCALE=10 (say) digs deeper by hand.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
EXAMPLES_PER_OPERATION = 12 * SCALE
STATEFUL_SCENARIOS = 15 * SCALE
STATEFUL_STEPS = 6
TALLY: Counter[str] = Counter()

# Checks that do not fit this contract, each with the reason.
EXCLUDED = [
    # A revoked key stays readable (GET /admin/keys/{id} shows `revoked: true`), by design.
    openapi_checks.use_after_free,
    openapi_checks.ensure_resource_availability,
    # Valid by the schema is not always accepted: an unknown model, a style the model lacks, a
    # prompt of spaces or control characters is a 400 the document describes.
    openapi_checks.positive_data_acceptance,
]


def settings(max_examples: int, **extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same cases on every run: a CI failure reproduces locally
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        **extra,
    )


def contract_error_body(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 5xx for anything a client sends; every 4xx is `{"status": "Error", "message", "code", ...}`."""
    TALLY["answers"] += 1
    status = response.status_code
    if status >= 500:
        raise AssertionError(f"{case.method} {case.formatted_path} answered {status}: {response.text[:300]}")
    if status < 400 or case.method.upper() == "HEAD":
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
    body = json.loads(response.text)
    assert isinstance(body, dict) and body.get("status") == "Error", body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    TALLY[f"error {status} {body['code']}"] += 1
    return True


def headers_for(key: str, path: str) -> dict[str, str]:
    token = ADMIN if path.startswith("/admin") else key
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def schema(live_gateway: LiveGateway) -> Any:
    loaded = schemathesis.openapi.from_url(live_gateway.url + "/openapi.json")
    # Unknown query parameters are ignored, not refused, by design: browsers and proxies add their own
    # (cache busters such as `_=1700000000`), and EventSource URLs must keep working with them.
    loaded.config.generation.update(allow_extra_parameters=False)
    return loaded


def run_operation(live: LiveGateway, operation: Any, mode: GenerationMode) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @settings(EXAMPLES_PER_OPERATION)
    def check(case: Case) -> None:
        TALLY["cases"] += 1
        case.call_and_validate(
            base_url=live.url,
            headers=headers_for(live.key, operation.path),
            additional_checks=[contract_error_body],
            excluded_checks=EXCLUDED,
            timeout=30,
        )

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation(live_gateway: LiveGateway, schema: Any, mode: GenerationMode) -> None:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            run_operation(live_gateway, operation, mode)
        except hypothesis.errors.Unsatisfiable:
            continue  # nothing to make invalid: an operation without parameters or body
        except Exception as exc:  # collect them all, then fail once with every finding
            TALLY["failures"] += 1
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    print(f"\nschemathesis {mode.value}: {dict(TALLY)}")
    assert not failures, "\n\n".join(failures)


def test_stateful_along_the_links(live_gateway: LiveGateway, schema: Any) -> None:
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            if not hasattr(self, "key"):  # a key of its own per scenario: admin steps may revoke any key
                self.key, _ = funded_key(live_gateway.url)
            TALLY["stateful steps"] += 1
            return {"base_url": live_gateway.url, "headers": headers_for(self.key, case.path), "timeout": 30}

        def validate_response(self, response: Response, case: Case, **kwargs: Any) -> None:
            case.validate_response(
                response, additional_checks=[contract_error_body], excluded_checks=EXCLUDED
            )

    Machine.run(settings=settings(STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS))
    print(f"\nschemathesis stateful: {dict(TALLY)}")
