"""deploy/prometheus/alerts.yml and deploy/grafana/gateway.json: checked by promtool, and every metric
they name is one the gateway's /metrics serves.

promtool comes with Debian's `prometheus` package (.ci/run installs it). Without it the promtool
checks are skipped, except where CI=true: there they fail, as the engine tests do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Harness

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "gateway.json"
METRIC = re.compile(r"\bgateway_[a-z0-9_]+")
# Grafana's variables, as Prometheus would see them once Grafana has put in their values
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$provider": ".*"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (apt-get install prometheus; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs these checks", pytrace=False)
        pytest.skip(reason)
    return path


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_alert_rules_pass_promtool_check() -> None:
    assert "SUCCESS: 6 rules found" in run(promtool(), "check", "rules", str(ALERTS))


def test_each_alert_fires_on_its_series_and_not_on_others() -> None:
    tool = promtool()
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text(encoding="utf-8")))
    defined = set(re.findall(r"- alert: (\w+)", ALERTS.read_text(encoding="utf-8")))
    assert defined == tested and {"GatewayCircuitOpen", "GatewayOpenStreamsDropped"} <= defined
    assert "SUCCESS" in run(tool, "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each panel's PromQL, with Grafana's variables filled in, as recording rules promtool checks."""
    tool = promtool()
    rules = []
    for number, expr in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    assert f"SUCCESS: {len(rules)} rules found" in run(tool, "check", "rules", str(path))


def test_dashboard_is_a_grafana_dashboard_over_a_chosen_prometheus() -> None:
    board = dashboard()
    assert board["uid"] == "media-gateway" and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in panels())
    for topic in (
        "requests",
        "open event streams",
        "jobs",
        "refunded",
        "upstream latency",
        "upstream errors",
        "circuit",
    ):
        assert topic in titles, topic
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    covered: set[tuple[int, int]] = set()
    for panel in board["panels"]:  # no panel drawn over another
        grid = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & covered and grid["x"] + grid["w"] <= 24, panel["title"]
        covered |= cells


def served_names(metrics_text: str) -> set[str]:
    """Every series name /metrics can serve, from its `# TYPE` lines (families without samples yet too)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


@pytest.mark.anyio
async def test_every_metric_the_dashboard_and_alerts_name_is_served(harness: Harness) -> None:
    served = served_names((await harness.client.get("/metrics")).text)
    assert {"gateway_requests_total", "gateway_provider_circuit_state"} <= served
    named = set(METRIC.findall(ALERTS.read_text(encoding="utf-8")))
    named |= set(METRIC.findall(ALERT_TESTS.read_text(encoding="utf-8")))
    named |= {m for expr in dashboard_queries() for m in METRIC.findall(expr)}
    named |= {m for v in dashboard()["templating"]["list"] for m in METRIC.findall(json.dumps(v))}
    assert len(named) >= 10
    assert not named - served, f"named but not served by /metrics: {sorted(named - served)}"
