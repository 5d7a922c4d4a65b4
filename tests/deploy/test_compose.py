"""deploy/compose.yaml and deploy/nginx.conf: checked by the real tools where they are installed.

`docker compose config -q` (the Compose v2 plugin) or `docker-compose config -q` (Debian's
`docker-compose` package, Compose 1.29, which validates against the compose-spec schema it ships)
parse, interpolate and validate the file without a Docker engine; `nginx -t` checks the proxy's
configuration inside a wrapper. Without the tools those tests are skipped; the structural checks
below them always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.nginx import write_nginx_conf

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "nginx.conf"
REPLICAS = ("gateway-1", "gateway-2", "gateway-3")
REQUIRED = (
    "GATEWAY_ADMIN_TOKEN",
    "GATEWAY_URL_SIGNING_KEY",
    "GATEWAY_WEBHOOK_SECRET",
    "GATEWAY_STREAM_TOKEN_SECRET",
    "POSTGRES_PASSWORD",
)
SHARED = (
    "GATEWAY_DATABASE_URL",
    "GATEWAY_REDIS_URL",
    "GATEWAY_STORAGE_URL",
    "GATEWAY_PUBLIC_URL",
    *REQUIRED[:-1],
)


def _compose_command() -> list[str] | None:
    """The Compose v2 plugin when the docker client has it, else the standalone docker-compose."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


COMPOSE_CMD = _compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE_CMD is None,
    reason="neither `docker compose` nor `docker-compose` is installed "
    "(Debian: apt-get install --no-install-recommends docker-compose)",
)
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not installed (Debian: apt-get install --no-install-recommends nginx)",
)


def _compose_config(compose: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMPOSE_CMD is not None
    # A fixed project name and no inherited COMPOSE_* settings: only the file under test counts.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in REQUIRED}
    return subprocess.run(
        [*COMPOSE_CMD, "--project-name", "gateway-test", "-f", str(compose), "config", "-q"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


SECRETS = {name: f"test-{name.lower()}" for name in REQUIRED}


@needs_compose
def test_compose_file_is_valid() -> None:
    result = _compose_config(COMPOSE, SECRETS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_compose
@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_a_shared_secret(missing: str) -> None:
    result = _compose_config(COMPOSE, {k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert f"set {missing}" in result.stdout + result.stderr


@needs_compose
def test_compose_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator really checks the schema (so a pass above means something)."""
    broken = COMPOSE.read_text().replace("condition: service_healthy", "condition: service_happy", 1)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "compose.yaml").write_text(broken)
    shutil.copy(NGINX, tmp_path / "deploy" / "nginx.conf")
    result = _compose_config(tmp_path / "deploy" / "compose.yaml", SECRETS)
    assert result.returncode != 0
    assert "service_happy" in result.stdout + result.stderr


@needs_nginx
def test_nginx_config_syntax(tmp_path: Path) -> None:
    # The compose service names do not resolve here, and nginx resolves upstream hosts while testing.
    site = re.sub(r"server gateway-\d+:8000", "server 127.0.0.1:8000", NGINX.read_text())
    write_nginx_conf(tmp_path, site)
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- structure: always run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_replicas_share_settings_and_differ_in_instance_id(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[name]["environment"] for name in REPLICAS]
    for name in SHARED:
        assert len({env[name] for env in envs}) == 1, name
    for name in REQUIRED[:-1]:
        assert envs[0][name] == f"${{{name}:?set {name}}}"
    assert envs[0]["GATEWAY_STORAGE_URL"] == "file:///results"
    assert envs[0]["GATEWAY_DATABASE_URL"].startswith("postgresql://")
    assert sorted(env["GATEWAY_INSTANCE_ID"] for env in envs) == list(REPLICAS)
    for name in REPLICAS:
        service = services[name]
        assert service["build"]["context"] == ".."
        assert service["command"] == ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
        assert "results:/results" in service["volumes"]
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
        assert "ports" not in service  # only the proxy is published
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]


def test_nginx_does_not_buffer_event_streams() -> None:
    text = NGINX.read_text()
    for name in REPLICAS:
        assert f"server {name}:8000" in text
    for directive in (
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_read_timeout 1h;",
    ):
        assert directive in text, directive
    assert "non_idempotent" not in text  # a POST that created a job is never replayed elsewhere
