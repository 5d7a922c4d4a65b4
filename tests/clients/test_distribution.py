"""The SDK's distribution installed alone into a fresh venv brings none of the server; the server's wheel carries the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.venv

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
# The SDK, its two dependencies and theirs (httpx: anyio, certifi, httpcore, idna; httpcore: h11; older
# anyio: sniffio, exceptiongroup; anyio before Python 3.13: typing-extensions).
ALLOWED = {
    "media-gateway-client",
    "httpx",
    "httpx-sse",
    "anyio",
    "certifi",
    "httpcore",
    "h11",
    "idna",
    "sniffio",
    "exceptiongroup",
    "typing-extensions",
}
SERVER_ONLY = {"asyncpg", "redis", "boto3", "cryptography", "starlette", "uvicorn", "pydantic"}
VENV_TOOLS = {"pip", "setuptools", "wheel"}  # what `python -m venv` puts there by itself
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json, re;"
    "print(json.dumps(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() for d in m.distributions()})))"
)


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the checkout must not leak into the fresh venv. pip keeps its own settings
    # (an index, or PIP_FIND_LINKS where a machine has a local wheel folder).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_sdk_installs_alone_with_none_of_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    assert run(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    pip = run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", CLIENT, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr

    listed = run(python, "-c", LIST_DISTRIBUTIONS, cwd=tmp_path)
    installed = set(json.loads(listed.stdout)) - VENV_TOOLS
    assert "media-gateway-client" in installed
    assert installed <= ALLOWED, f"pulled in beyond httpx's tree: {installed - ALLOWED}"
    assert not installed & SERVER_ONLY

    sdk = run(python, "-c", "from gateway_client import AsyncGateway, Gateway, GatewayError", cwd=tmp_path)
    assert sdk.returncode == 0, sdk.stderr
    for server_package in ("gateway", "providers"):
        missing = run(python, "-c", f"import {server_package}", cwd=tmp_path)
        assert missing.returncode != 0
        assert f"No module named '{server_package}'" in missing.stderr


def test_the_servers_wheel_carries_the_sdk(tmp_path: Path) -> None:
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--disable-pip-version-check",
        "-w",
        tmp_path,
        ROOT,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("media_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sdk = {name for name in names if name.startswith("gateway_client/")}
    assert {f"gateway_client/{name}" for name in ("__init__.py", "errors.py", "events.py", "py.typed")} <= sdk
    assert "gateway/client.py" in names and "gateway/cli/client.py" in names
    assert not any(name.startswith("clients/") for name in names)
