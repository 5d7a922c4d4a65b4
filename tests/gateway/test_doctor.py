"""`gateway doctor` against the simulator: what it reports for a healthy setup and for each kind of fault."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gateway.cli import demo_settings, main
from gateway.settings import AccountConfig, Settings
from gateway.upstreams import doctor
from providers.doctor import Status
from providers.simulator import build_app
from providers.workflows import DEFAULT_WORKFLOW
from tests.servers import free_port, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[str]:
    async with serving(build_app(1.0, tmp_path / "simulator"), lifespan="off") as url:
        yield url


def pointed_at(url: str, tmp_path: Path, **provider_changes: dict[str, Any]) -> Settings:
    """The shipped providers on the simulator at `url`, outside demo mode: credentials come from the
    environment, as they would for a real upstream."""
    settings = demo_settings("127.0.0.1", 8000, url).model_copy(update={"demo": False, "data_dir": tmp_path})
    providers = {
        name: config.model_copy(update=provider_changes.get(name, {}))
        for name, config in settings.providers.items()
    }
    return settings.model_copy(update={"providers": providers})


def all_credentials(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    defaults = {
        "SUNO_API_URL": "set",
        "LUMAAI_API_KEY": "luma-key",
        "FAL_KEY": "fal-key",
        "RUNWAYML_API_SECRET": "runway-key",
        "COMFYUI_URL": "set",
    }
    for name, value in {**defaults, **values}.items():
        monkeypatch.setenv(name, value)


async def checked(
    settings: Settings, *names: str
) -> tuple[int, dict[str, dict[str, tuple[Status, str]]], str]:
    """The exit code, each provider's findings by check, and the printed text."""
    out = io.StringIO()
    code = await doctor.run(settings, names, Console(file=out, width=200, color_system=None), 5.0)
    exams = await doctor.examine(settings, names, 5.0)
    found = {e.provider: {f.check: (f.status, f.detail) for f in e.findings} for e in exams}
    return code, found, out.getvalue()


async def test_every_provider_answers_on_the_simulator(simulator: str, tmp_path: Path) -> None:
    code, found, printed = await checked(demo_settings("127.0.0.1", 8000, simulator))
    assert code == 0, printed
    assert set(found) == {"suno", "luma", "pika", "run", "local"}
    for provider in ("suno", "luma", "pika", "run"):
        assert found[provider]["reachable"][0] is Status.OK
        assert found[provider]["auth"][0] is Status.OK, found[provider]
    assert found["luma"]["auth"][1] == "credit balance $2,500.00"
    assert found["run"]["auth"][1] == "100,000 credits"
    assert found["local"]["workflow"] == (
        Status.OK,
        "txt2img.json: all 7 nodes and their model files are on the server",
    )
    assert "all 5 configured providers answer as they should" in printed


async def test_credentials_from_the_environment_pass(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch)
    code, found, printed = await checked(pointed_at(simulator, tmp_path))
    assert code == 0, printed
    assert found["luma"]["credential"] == (Status.OK, "LUMAAI_API_KEY is set")
    assert found["suno"]["credential"] == (Status.OK, "SUNO_API_KEY unset (optional)")


async def test_a_missing_credential_is_a_problem_for_a_provider_asked_for(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch)
    monkeypatch.delenv("RUNWAYML_API_SECRET")
    settings = pointed_at(simulator, tmp_path)

    code, found, printed = await checked(settings, "run", "luma")
    assert code == 1
    assert found["run"] == {"credential": (Status.PROBLEM, "RUNWAYML_API_SECRET not set")}
    assert found["luma"]["auth"][0] is Status.OK
    assert "1 problem: run" in printed

    # Asked about everything, a provider with nothing set is one the operator does not use.
    code, found, printed = await checked(settings)
    assert code == 0, printed
    assert found["run"]["credential"] == (
        Status.SKIPPED,
        "not configured (set RUNWAYML_API_SECRET to use it)",
    )


async def test_nothing_configured_is_a_problem(tmp_path: Path) -> None:
    code, found, printed = await checked(Settings(data_dir=tmp_path))
    assert code == 1 and "no provider is configured" in printed
    assert all(f["credential"][0] is Status.SKIPPED for f in found.values())


async def test_an_unreachable_host(simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    all_credentials(monkeypatch)
    nobody = f"http://127.0.0.1:{free_port()}"
    settings = pointed_at(
        simulator,
        tmp_path,
        luma={"base_url": nobody + "/luma/dream-machine/v1"},
        local={"base_url": nobody + "/comfyui"},
    )
    code, found, printed = await checked(settings)
    assert code == 1
    for provider in ("luma", "local"):
        status, detail = found[provider]["reachable"]
        assert status is Status.PROBLEM and detail.startswith(nobody), detail
    assert found["luma"]["auth"][0] is Status.SKIPPED
    assert found["run"]["auth"][0] is Status.OK
    assert "2 problems: luma, local" in printed


@pytest.mark.parametrize(
    ("provider", "variable", "message"),
    [
        ("luma", "LUMAAI_API_KEY", "upstream answered 401: Invalid or missing API key"),
        ("run", "RUNWAYML_API_SECRET", "upstream answered 401: Invalid API key"),
        ("pika", "FAL_KEY", "upstream answered 401: Authentication is required"),
        ("suno", "SUNO_API_KEY", "upstream answered 401: Unauthorized: invalid API key"),
    ],
)
async def test_a_rejected_credential(
    simulator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    variable: str,
    message: str,
) -> None:
    all_credentials(monkeypatch, **{variable: "invalid"})
    code, found, printed = await checked(pointed_at(simulator, tmp_path))
    assert code == 1
    status, detail = found[provider]["auth"]
    assert status is Status.PROBLEM and detail.startswith(f"credential rejected: {message}"), detail
    assert found[provider]["reachable"][0] is Status.OK
    assert f"1 problem: {provider}" in printed


async def test_a_workflow_the_comfyui_server_cannot_run(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch)
    workflow = json.loads(DEFAULT_WORKFLOW.read_text())
    workflow["4"]["inputs"]["ckpt_name"] = "flux1-dev.safetensors"
    workflow["3"]["inputs"]["sampler_name"] = "euler_z"
    workflow["10"] = {"class_type": "UpscaleWithMagic", "inputs": {"image": ["8", 0]}}
    path = tmp_path / "sdxl.json"
    path.write_text(json.dumps(workflow))
    settings = pointed_at(simulator, tmp_path, local={"extra": {"workflow": str(path)}})

    code, found, _ = await checked(settings, "local")
    assert code == 1
    status, detail = found["local"]["workflow"]
    assert status is Status.PROBLEM
    assert detail.startswith("sdxl.json: ")
    assert set(detail.removeprefix("sdxl.json: ").split("; ")) == {
        "node 3 (KSampler): value 'euler_z' for sampler_name is not on the server",
        "node 4 (CheckpointLoaderSimple): model file 'flux1-dev.safetensors' for ckpt_name is not on the server",
        "node 10: node type 'UpscaleWithMagic' is not installed",
    }
    assert found["local"]["reachable"][0] is Status.OK


async def test_a_shipped_workflow_named_alone(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch)
    settings = pointed_at(simulator, tmp_path, local={"extra": {"workflow": "model_free.json"}})
    code, found, printed = await checked(settings, "local")
    assert code == 0, printed
    assert found["local"]["workflow"] == (
        Status.OK,
        "model_free.json: all 3 nodes and their model files are on the server",
    )


async def test_an_unreadable_workflow(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch)
    settings = pointed_at(simulator, tmp_path, local={"extra": {"workflow": str(tmp_path / "none.json")}})
    code, found, _ = await checked(settings, "local")
    assert code == 1 and found["local"]["workflow"][0] is Status.PROBLEM
    assert "none.json could not be read" in found["local"]["workflow"][1]


def test_an_unknown_provider_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["doctor", "midjourney"])
    assert exit_.value.code == 2
    assert "unknown provider 'midjourney'" in capsys.readouterr().err


async def test_each_upstream_account_is_checked_on_its_own(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_credentials(monkeypatch, LUMA_KEY_A="invalid", LUMA_KEY_B="good")
    monkeypatch.delenv("LUMAAI_API_KEY")  # the accounts bring their own credentials
    accounts = [AccountConfig(name=n, credential_env=f"LUMA_KEY_{n.upper()}") for n in ("a", "b", "c")]
    code, found, _ = await checked(pointed_at(simulator, tmp_path, luma={"accounts": accounts}), "luma")
    assert code == 1
    luma = found["luma"]
    assert luma["credential (a)"][0] is luma["credential (b)"][0] is Status.OK
    assert luma["credential (c)"][0] is Status.SKIPPED  # unset: the gateway leaves it out
    assert luma["auth (a)"][0] is Status.PROBLEM and "401" in luma["auth (a)"][1]
    assert luma["auth (b)"][0] is Status.OK and "auth (c)" not in luma
