"""`gateway simulator --tls`: HTTPS with a certificate kept in the data dir; the SDKs reach it configured by
the environment the simulator prints, with nothing patched."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509

from bench.cluster import ROOT, free_port, stop_process, wait_until
from providers.simulator.tls import ensure_certificate

EXPORT = re.compile(r"export (SSL_CERT_FILE|FAL_QUEUE_RUN_HOST)=(\S+)")


@dataclass
class TlsSimulator:
    url: str
    printed: dict[str, str]
    """The variables the simulator told its clients to export."""
    output: list[str]


def start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """`gateway simulator --tls` until it has printed its SSL_CERT_FILE line; its output so far."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "SSL_CERT", "FAL_"))},
        "GATEWAY_DATA_DIR": str(data_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "simulator", "--tls", "--port", str(port), "--speed", "500"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "FAL_QUEUE_RUN_HOST" in line:
            break
    threading.Thread(target=process.stdout.read, daemon=True).start()  # a full pipe must not block it
    return process, lines


@pytest.fixture
def tls_simulator(tmp_path: Path) -> Iterator[TlsSimulator]:
    port = free_port()
    process, lines = start(tmp_path / "data", port)
    try:
        printed = dict(m.groups() for line in lines if (m := EXPORT.search(line)))
        assert set(printed) == {"SSL_CERT_FILE", "FAL_QUEUE_RUN_HOST"}, "".join(lines)
        url = f"https://127.0.0.1:{port}"
        trusted = httpx.Client(verify=_context(printed["SSL_CERT_FILE"]), timeout=2)

        def answers() -> bool:
            assert process.poll() is None, "".join(lines)
            try:
                return trusted.get(url + "/").status_code == 200
            except httpx.TransportError:
                return False

        with trusted:
            wait_until(answers, timeout=30)
        yield TlsSimulator(url, printed, lines)
    finally:
        stop_process(process)


def _context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def test_it_prints_what_clients_export(tls_simulator: TlsSimulator, tmp_path: Path) -> None:
    first = tls_simulator.output[0]
    assert f"upstream at {tls_simulator.url}" in first and f"--simulator-url {tls_simulator.url}" in first
    trust = Path(tls_simulator.printed["SSL_CERT_FILE"])
    assert trust.parent == (tmp_path / "data" / "simulator" / "tls").resolve()
    port = tls_simulator.url.rsplit(":", 1)[1]
    assert tls_simulator.printed["FAL_QUEUE_RUN_HOST"] == f"127.0.0.1:{port}/fal"
    with pytest.raises(httpx.ConnectError):  # not trusted without it
        httpx.get(tls_simulator.url + "/", timeout=5, trust_env=False)
    index = httpx.get(tls_simulator.url + "/", timeout=5, verify=_context(str(trust))).json()
    assert index["providers"]["pika"] == tls_simulator.url + "/fal"


def test_fal_client_needs_only_the_printed_environment(tls_simulator: TlsSimulator) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "SSL_CERT", "GATEWAY_"))},
        **tls_simulator.printed,
        "FAL_KEY": "fal-key",
    }
    session = subprocess.run(
        [sys.executable, "-m", "tests.simulator.fal_session"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert session.returncode == 0, session.stdout + session.stderr
    assert "fal-client session passed" in session.stdout


def test_the_certificate_is_kept_across_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    first = ensure_certificate(tmp_path, "127.0.0.1")
    issued = first.cert_file.read_bytes()
    again = ensure_certificate(tmp_path, "127.0.0.1")
    assert again.cert_file.read_bytes() == issued  # an exported SSL_CERT_FILE stays good

    server = x509.load_pem_x509_certificate(issued)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    trust = again.trust_file.read_text()
    assert trust.startswith(Path(certifi.where()).read_text().rstrip("\n")[:200])  # the usual roots stay
    assert trust.rstrip().endswith(again.authority_file.read_text().rstrip())

    # Served on another name, the certificate must cover it: a new one is issued.
    other = ensure_certificate(tmp_path, "sim.internal")
    assert other.cert_file.read_bytes() != issued
    names = x509.load_pem_x509_certificate(other.cert_file.read_bytes()).extensions
    assert "sim.internal" in names.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
