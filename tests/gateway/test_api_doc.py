"""docs/api.md keeps step with /openapi.json, the contract (gateway/contract) and its error handlers, and stands on
its own."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.contract import errors, responses
from gateway.contract.errors import ErrorBody
from gateway.contract.events import EVENTS
from gateway.contract.requests import Credit, GenerateRequest, KeyRequest, KeyUpdate
from gateway.web import errors as rendering
from tests.conftest import Harness

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
INDEX_ROW = re.compile(r"^\| ([A-Z][A-Z, ]*) \| `(/[^`]*)` \|", re.MULTILINE)


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def spec_error_codes(spec: dict[str, Any]) -> set[str]:
    """The codes each error response names: "a, b or c (extra words)" in its description."""
    codes: set[str] = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            for response in operation["responses"].values():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/Error":
                    continue
                named = response["description"].split("(")[0].strip()
                for code in re.split(r",\s*|\s+or\s+", named):
                    assert CODE.fullmatch(code), f"unexpected error description {response['description']!r}"
                    codes.add(code)
    return codes


def exception_codes() -> set[str]:
    """Every ApiError subclass's `code`, and the codes the handlers (gateway/web/errors.py) write literally."""
    codes = {
        cls.code for cls in vars(errors).values() if inspect.isclass(cls) and issubclass(cls, errors.ApiError)
    }
    codes |= set(re.findall(r'"code":\s*"([a-z_]+)"', inspect.getsource(rendering)))
    return codes


async def test_every_path_and_method_of_the_spec_is_documented(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    text = doc()
    index: dict[str, set[str]] = {}
    for methods, path in INDEX_ROW.findall(text):
        index.setdefault(path, set()).update(m.strip().lower() for m in methods.split(","))
    for path, operations in spec["paths"].items():
        assert f"`{path}`" in text, f"{path} is not in docs/api.md"
        assert path in index, f"{path} is missing from the endpoint index of docs/api.md"
        assert set(operations) <= index[path], (path, set(operations) - index[path])
    assert set(index) <= set(spec["paths"]), set(index) - set(spec["paths"])


async def test_every_error_code_of_the_spec_is_documented(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    codes = spec_error_codes(spec)
    assert {"invalid_request", "insufficient_tokens", "provider_unavailable"} <= codes
    text = doc()
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"error codes missing from docs/api.md: {missing}"


async def test_the_job_and_event_schemas_are_documented(harness: Harness) -> None:
    schemas = (await harness.client.get("/openapi.json")).json()["components"]["schemas"]
    text = doc()
    for name in ("Job", "Event"):
        missing = sorted(f for f in schemas[name]["properties"] if f"`{f}`" not in text)
        assert not missing, f"{name} fields missing from docs/api.md: {missing}"
    statuses = schemas["Event"]["properties"]["status"]["enum"]
    assert not [s for s in statuses if f"`{s}`" not in text]


def test_every_exception_code_is_documented() -> None:
    codes = exception_codes()
    assert {"invalid_request", "range_not_satisfiable", "too_many_jobs", "internal_error"} <= codes
    text = doc()
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"error codes of gateway/contract/errors.py missing from docs/api.md: {missing}"


def test_the_document_stands_on_its_own() -> None:
    text = doc()
    assert "../" not in text  # no link leaves the repository
    assert "/work/" not in text
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "(docs/api.md)" in readme


def failure_codes() -> set[str]:
    """The `code`s a job's `Error` event can carry: each `Failed(message, code)` and `_fail(job, message, code)`."""
    from providers.base import Failed

    root = Path(__file__).resolve().parents[2]
    default = Failed.__dataclass_fields__["code"].default
    assert isinstance(default, str)
    codes = {default}
    sources = [*(root / "gateway").rglob("*.py"), *(root / "providers").rglob("*.py")]
    for source in sorted(s for s in sources if "simulator" not in s.parts):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            position = {"Failed": 1, "_fail": 2}.get(name)
            if position is None or len(node.args) <= position:
                continue
            for part in ast.walk(node.args[position]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    codes.add(part.value)
    return codes


def test_every_error_event_code_is_documented() -> None:
    codes = failure_codes()
    assert {"upstream_failed", "upstream_error", "timeout", "result_unavailable"} <= codes
    text = doc()
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"Error event codes missing from docs/api.md: {missing}"


async def test_every_error_event_code_is_in_the_spec(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    described = spec["components"]["schemas"]["Event"]["properties"]["code"]["description"]
    missing = sorted(code for code in failure_codes() if code not in described)
    assert not missing, f"Error event codes missing from the Event schema of /openapi.json: {missing}"


# --- the field tables follow gateway/contract's models --------------------------------------------


def section(heading: str) -> str:
    """The text under `heading` (a whole heading line), up to the next heading of its level or above."""
    text = doc()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    level = heading.split(" ")[0]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.MULTILINE)]
    return text[start : start + ends[0]] if ends else text[start:]


def table(text: str) -> list[list[str]]:
    """The rows of the first table in `text` (header and rule left out), as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def named(cell: str) -> set[str]:
    """The names a cell gives in backticks (`refunded: true` names `refunded`)."""
    return {name.split(":")[0] for name in re.findall(r"`([a-z_][a-z0-9_]*(?::[^`]*)?)`", cell)}


def fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def first_column(heading: str) -> set[str]:
    return set().union(*(named(row[0]) for row in table(section(heading))))


@pytest.mark.parametrize(
    ("heading", "model"),
    [
        ("### `POST /api/generate`", GenerateRequest),
        ("## The job object", responses.Job),
        ("### `GET /api/ledger`", responses.LedgerEntry),
        ("### `GET /api/models`", responses.Model),
        ("## Admin: API keys", responses.Key),
        ("### `GET /admin/providers`", responses.ProviderHealth),
    ],
)
def test_a_field_table_lists_its_models_fields(heading: str, model: type[BaseModel]) -> None:
    assert first_column(heading) == fields(model), heading


def test_the_event_table_lists_each_events_fields() -> None:
    events = section("## Events")
    rows = {row[0].strip("`"): named(row[1]) for row in table(events[events.index("| `status` |") :])}
    assert set(rows) == {model.model_fields["status"].annotation.__args__[0] for model in EVENTS}
    for model in EVENTS:
        status = model.model_fields["status"].annotation.__args__[0]
        assert rows[status] == fields(model) - {"status", "job_id"}, status


def test_the_answers_and_bodies_described_in_prose_name_every_field() -> None:
    providers = table(section("### `GET /admin/providers`"))
    accounts = next(row for row in providers if row[0] == "`accounts`")
    assert named(accounts[1]) == fields(responses.Account)
    described = {
        "### `POST /api/quote`": [responses.Quote],
        "### `GET /admin/usage?from=&to=&group_by=`": [
            responses.Usage,
            responses.UsageGroup,
            responses.UsageJobs,
        ],
        "### `GET /admin/jobs?status=&provider=&key=&limit=&offset=`": [responses.AdminJobPage],
        "## Admin: API keys": [KeyRequest, KeyUpdate, Credit, responses.KeyBalance, responses.Keys],
    }
    for heading, models in described.items():
        text = section(heading)
        for model in models:
            missing = sorted(f for f in fields(model) if f'"{f}"' not in text and f"`{f}`" not in text)
            assert not missing, (heading, model.__name__, missing)
    admin_only = fields(responses.AdminJob) - fields(responses.Job)
    assert not [
        f
        for f in admin_only
        if f"`{f}`" not in section("### `GET /admin/jobs?status=&provider=&key=&limit=&offset=`")
    ]
    errors_table = table(section("## Errors"))
    extras = set().union(*(named(row[2]) for row in errors_table))
    assert fields(ErrorBody) - {"status", "message", "code"} <= extras
