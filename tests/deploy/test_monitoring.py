"""The monitoring that ships in deploy/: the Prometheus Operator's objects
(deploy/k8s/monitoring), the alert rules checked and unit-tested by promtool (Debian's
``prometheus`` package; ``./dev test`` installs it when missing, and these tests fail without
it), every alert's runbook in docs/operations.md, and the Grafana dashboard
(deploy/grafana/wangban.json) reading only metrics a running service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from wangban.app import create_service_app
from wangban.services import load_spec
from wangban.settings import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
BASE = ROOT / "deploy" / "k8s" / "base"
RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "wangban.json"
OPERATIONS = ROOT / "docs" / "operations.md"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")

# A PromQL word that is a metric of ours (or of prometheus_client's process collectors). ``up``
# is Prometheus's own, made by every scrape.
_METRIC = re.compile(r"\b((?:wangban|process|python)_[a-z0-9_]+)\b")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _rule_groups() -> list[dict[str, Any]]:
    (rule,) = _docs(RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _rule_groups() for rule in group["rules"] if "alert" in rule]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _promtool() -> str:
    promtool = shutil.which("promtool")
    # Not a skip: a CI machine without it would pass over the only check of the rules.
    assert promtool, "promtool is missing: Debian's prometheus package (./dev test installs it)"
    return promtool


def _rules_file(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": _rule_groups()}), encoding="utf-8")
    return path


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(_rules_file(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


def test_promtool_unit_tests_of_the_alerts_pass(tmp_path: Path) -> None:
    _rules_file(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = subprocess.run(
        [_promtool(), "test", "rules", ALERT_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The unit tests cover these alerts at least (each fires, and stays quiet before it should).
    covered = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text(encoding="utf-8")))
    assert {
        "WangbanHigh5xxRatio",
        "WangbanBrokerDown",
        "WangbanDatabasePoolExhausted",
        "WangbanDatabaseCheckoutsGivingUp",
    } <= covered


def test_the_alerts_operators_need_are_there_each_with_a_runbook_section() -> None:
    names = {alert["alert"] for alert in _alerts()}
    assert names >= {
        "WangbanTargetDown",
        "WangbanServiceAbsent",
        "WangbanHigh5xxRatio",
        "WangbanLatencyP99OverBudget",
        "WangbanOutboxBacklogGrowing",
        "WangbanConsumerLagHigh",
        "WangbanDeadLetters",
        "WangbanDatabasePoolExhausted",
        "WangbanDatabaseCheckoutsGivingUp",
        "WangbanBrokerDown",
    }
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    assert "alerts-and-runbooks" in headings
    for alert in _alerts():
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        url = alert["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{alert['alert'].lower()}", alert["alert"]
        assert url.partition("#")[2] in headings, f"no runbook section for {alert['alert']}"


def test_the_service_monitor_scrapes_every_pods_metrics_port() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in MONITORING.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    (service,) = _docs(MONITORING / "metrics-service.yaml")
    (monitor,) = _docs(MONITORING / "servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    (port,) = service["spec"]["ports"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # Every service's pods: the selector matches them and they all name their port "metrics".
    deployments = [
        d for path in BASE.glob("*.yaml") for d in _docs(path) if d.get("kind") == "Deployment"
    ]
    assert {d["metadata"]["name"] for d in deployments} == set(SERVICE_NAMES)
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[port["targetPort"]] == port["port"]
    # The job label is the service's name (what the rules and the dashboard group by).
    (relabel,) = endpoint["relabelings"]
    assert relabel["targetLabel"] == "job"
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]


def _exported(text: str) -> set[str]:
    """Every sample name the exposition can carry, from its TYPE lines (a labelled family with
    no child yet has no sample, but is declared)."""
    names: set[str] = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.add(family)
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    return names


async def _scrape(settings: Settings) -> str:
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as c,
    ):
        assert (await c.get("/readyz")).status_code in (200, 503)  # a pooled connection used
        scraped = await c.get("/metrics")
        assert scraped.status_code == 200
        return scraped.text


async def test_every_metric_in_the_rules_and_the_dashboard_is_exported(
    settings: Settings,
) -> None:
    exported = _exported(await _scrape(settings))
    # What this change added is there: process, pool, outbound calls, producer, handler.
    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "wangban_db_pool_checked_out",
        "wangban_db_pool_max",
        "wangban_db_pool_checkout_seconds_bucket",
        "wangban_db_pool_timeouts_total",
        "wangban_http_client_requests_total",
        "wangban_outbox_publish_errors_total",
        "wangban_outbox_publish_duration_seconds_bucket",
        "wangban_consumer_handler_duration_seconds_bucket",
    } <= exported
    used = {
        name
        for expr in [a["expr"] for a in _alerts()] + _dashboard_exprs()
        for name in _METRIC.findall(expr)
    }
    assert used, "no metric found in the rules and the dashboard"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


async def test_no_series_carries_a_service_label_or_a_created_timestamp(
    settings: Settings,
) -> None:
    text = await _scrape(settings)
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples
    assert not [line for line in samples if re.search(r'[{,]service="', line)]
    assert not [line for line in samples if line.split("{")[0].split(" ")[0].endswith("_created")]
    assert "_created " not in text and "_created{" not in text
    # This app checks no broker (no background work, like the gateway): it must not say the
    # broker is down (WangbanBrokerDown would fire), only declare the metric.
    assert "# TYPE wangban_broker_up gauge" in text
    assert not [line for line in samples if line.startswith("wangban_broker_up")]
