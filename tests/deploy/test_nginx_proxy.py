"""deploy/nginx.conf for real: nginx on loopback in front of `gateway demo`, an event stream through it."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.nginx import write_nginx_conf
from tests.e2e.test_restart import Demo, wait_until
from tests.servers import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("nginx") is None,
        reason="nginx is not installed (Debian: apt-get install --no-install-recommends nginx)",
    ),
]
NGINX = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, Demo]]:
    proxy_port = free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    demo = Demo(tmp_path / "data", env={"GATEWAY_SIMULATOR__SPEED": "20", "GATEWAY_PUBLIC_URL": proxy_url})
    # The three replicas are the one demo here; the proxy listens on loopback only.
    site = re.sub(r"server gateway-\d+:8000", f"server 127.0.0.1:{demo.port}", NGINX.read_text())
    site = site.replace("listen 80;", f"listen 127.0.0.1:{proxy_port};")
    write_nginx_conf(tmp_path, site, foreground=True)
    demo.start()
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            assert nginx.poll() is None, (tmp_path / "error.log").read_text()
            try:
                return httpx.get(proxy_url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=20)
        yield proxy_url, demo
    finally:
        nginx.send_signal(signal.SIGQUIT)  # graceful: lets the streams end
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait(10)
        demo.stop()


def test_events_pass_through_nginx_as_they_happen(proxied: tuple[str, Demo]) -> None:
    proxy_url, demo = proxied
    arrivals: list[tuple[float, dict[str, object]]] = []
    with httpx.stream(
        "POST",
        proxy_url + "/api/generate",
        json={"model": "suno", "prompt": "a sea shanty"},
        headers={"Authorization": f"Bearer {demo.key}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), json.loads(line[6:])))
    statuses = [event["status"] for _, event in arrivals]
    assert statuses[0] == "Processing started"
    assert statuses[-1] == "Completed", statuses
    # Unbuffered: the first event reached the client well before the job was done.
    assert arrivals[-1][0] - arrivals[0][0] > 0.5
    url = str(arrivals[-1][1]["url"])
    assert url.startswith(proxy_url + "/files/")  # GATEWAY_PUBLIC_URL is the proxy
    download = httpx.get(url, timeout=10)
    assert download.status_code == 200 and len(download.content) > 0
