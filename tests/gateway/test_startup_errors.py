"""A bad config or workflow stops `gateway serve`/`demo` with one clear line: no traceback, no loop noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import preflight
from gateway.settings import Settings
from tests.servers import free_port


def start(tmp_path: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    port = free_port()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            command,
            "--port",
            str(port),
            "--simulator-port",
            str(free_port()),
        ]
        if command == "demo"
        else [sys.executable, "-m", "gateway.cli", command, "--port", str(port)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


CASES = {
    "missing workflow": (
        {"GATEWAY_PROVIDERS__LOCAL__EXTRA__WORKFLOW": "{tmp}/nope.json"},
        "nope.json could not be read",
    ),
    "workflow not in API format": (
        {"GATEWAY_PROVIDERS__LOCAL__EXTRA__WORKFLOW": "{tmp}/list.json"},
        "not in API format",
    ),
    "a setting of the wrong type": ({"GATEWAY_MAX_PROMPT_CHARS": "lots"}, "max_prompt_chars"),
    "a config file that is not there": (
        {"GATEWAY_CONFIG": "{tmp}/missing.toml"},
        "missing.toml, which is not a file",
    ),
    "a config file that is not TOML": ({"GATEWAY_CONFIG": "{tmp}/broken.toml"}, "not valid TOML"),
    "a database nobody answers on": (
        {"GATEWAY_DATABASE_URL": "postgresql://gw:hunter2@127.0.0.1:9/gateway"},
        "the database at 127.0.0.1:9 cannot be used",
    ),
    "a Redis nobody answers on": (
        {"GATEWAY_REDIS_URL": "redis://:hunter2@127.0.0.1:9/0"},
        "Redis at 127.0.0.1:9 cannot be used",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"models": {"suno": {"provider": "nope", "kind": "audio", "cost": 1}}},
            "'nope', which is not configured",
        ),
        (
            {"providers": {"suno": {"adapter": "providers.nothing:Nope", "base_url": "http://x"}}},
            "cannot be loaded",
        ),
    ],
)
async def test_preflight_names_what_does_not_fit(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    settings = Settings(data_dir=tmp_path)
    merged = {name: {**getattr(settings, name), **value} for name, value in change.items()}
    with pytest.raises(preflight.ConfigError, match=expected):
        await preflight.check(Settings.model_validate({**settings.model_dump(), **merged}))


@pytest.mark.parametrize(
    ("command", "case"),
    [
        *(("serve", case) for case in CASES),
        ("demo", "missing workflow"),  # demo starts the simulator beside it: the check comes first
        ("demo", "a setting of the wrong type"),
        ("demo", "a database nobody answers on"),
    ],
)
def test_a_bad_start_is_one_line(tmp_path: Path, command: str, case: str) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.toml").write_text("max_prompt_chars = = 3\n")
    env, expected = CASES[case]
    env = {name: value.replace("{tmp}", str(tmp_path)) for name, value in env.items()}
    if "WORKFLOW" in next(iter(env)):
        env["COMFYUI_URL"] = "http://127.0.0.1:9"  # the provider must be configured for `serve` to build it
    finished = start(tmp_path, command, env)
    assert finished.returncode == 1
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("gateway: ")]
    assert len(errors) == 1 and expected in errors[0], finished.stderr
    assert "Traceback" not in finished.stderr and "Event loop is closed" not in finished.stderr
    assert not any("ERROR" in line for line in lines), finished.stderr
    assert "hunter2" not in finished.stderr + finished.stdout  # a password is never printed
