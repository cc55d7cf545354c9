"""The Grafana dashboard and the alert rules in k8s/monitoring/, checked against the code.

- the PrometheusRule's groups pass `promtool check rules`, and the unit tests in
  alerts.test.yaml pass `promtool test rules` (Debian's `prometheus` package; .ci/run
  installs it);
- every alert has severity, summary, description and a runbook_url naming a runbook in
  docs/runbooks/ with the four sections, and every runbook belongs to an alert;
- the dashboard is valid JSON, and every metric the dashboard or an alert names is one
  the services export, read from their metric registries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from service.console.metrics import ConsoleMetrics
from service.consume.metrics import ConsumerMetrics
from service.ingest.metrics import IngestMetrics
from tests.conftest import ROOT

MONITORING = ROOT / "k8s" / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_SECTIONS = ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**")
# the services' metric names all start with one of these; PromQL words never do
METRIC_NAME = re.compile(r"\b(?:gateway|consumer)_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


def exported_metric_names() -> set[str]:
    """Every series name the ingest, the consumer and the console can export."""
    registries = [IngestMetrics().registry, ConsumerMetrics(CollectorRegistry()).registry, ConsoleMetrics().registry]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def rule_groups() -> list[dict[str, Any]]:
    rule = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain rule file, beside a copy of the unit tests."""
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    shutil.copy(MONITORING / "alerts.test.yaml", tmp_path / "alerts.test.yaml")
    return tmp_path


def test_promtool_accepts_the_rules(rules_dir: Path) -> None:
    done = promtool("check", "rules", "alerts.rules.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_the_alert_unit_tests_pass(rules_dir: Path) -> None:
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "alerts.test.yaml").read_text()))
    assert len(tested) >= 3, tested
    done = promtool("test", "rules", "alerts.test.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_labelled_annotated_and_has_a_runbook() -> None:
    names = set()
    for alert in alerts():
        name = alert["alert"]
        names.add(name)
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"].endswith(f"/docs/runbooks/{name}.md"), name
        runbook = (RUNBOOKS / f"{name}.md").read_text()
        assert runbook.startswith(f"# {name}\n"), name
        for section in RUNBOOK_SECTIONS:
            assert section in runbook, (name, section)
    assert {p.stem for p in RUNBOOKS.glob("*.md")} == names  # no runbook without its alert
    required = {
        "GatewayIngestAnswering503",
        "GatewaySignatureFailuresJump",
        "GatewayOutboxNotDraining",
        "GatewayConsumerLagGrowing",
        "GatewayDeadLetterRate",
        "GatewayEndToEndP99OverBudget",
        "GatewayTokenRefreshFailures",
        "GatewayRecoverSweepStale",
    }
    assert required <= names


def test_the_dashboard_names_only_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    named = {m for expr in dashboard_exprs() for m in METRIC_NAME.findall(expr)}
    assert len(named) >= 20, named
    assert named - exported == set()
    # it covers each service: ingest, consumer, and the console's Kafka/Postgres view
    assert {
        "gateway_ingest_requests_total",
        "consumer_end_to_end_seconds_bucket",
        "gateway_consumer_group_lag",
    } <= named


def test_the_alerts_name_only_metrics_the_services_export() -> None:
    named = {m for alert in alerts() for m in METRIC_NAME.findall(alert["expr"])}
    assert named and named - exported_metric_names() == set()
