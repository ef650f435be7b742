"""monitoring/: the Prometheus alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``; Debian's ``prometheus`` package, which ``.ci/run`` installs), say the
same alerts as ``common/alerts.py``, and they and the Grafana dashboard reference only metrics
that the device and the aggregator export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cloud_sync.metrics import AggregatorMetrics
from common.alerts import RULES
from device.metrics import HealthCollector, SystemFigures
from tests.device.web.test_metrics import PLANNING, SYNC, Figures, bridge_health

MONITORING = Path(__file__).parent.parent / "monitoring"
RULES_FILE = MONITORING / "alert_rules.yaml"
DASHBOARD = MONITORING / "grafana" / "aggregator.json"
METRIC = re.compile(r"\bnattery_[a-z0-9_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([binary, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "alert_rules_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_rule_set_is_a_prometheus_rule_with_its_severity() -> None:
    rules = [r for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in group["rules"]]
    shipped = {(r["labels"]["nattery_alert"], r["labels"]["severity"]) for r in rules}
    assert shipped == {(rule.name, rule.severity) for rule in RULES}
    tested = yaml.safe_load((MONITORING / "alert_rules_test.yaml").read_text())["tests"]
    raised = {case["alertname"] for t in tested for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert raised == {r["alert"] for r in rules}


def exported() -> set[str]:
    """Every sample name the device and the aggregator export when all their figures are known."""
    health = {"bridge": Figures({"online": True, **bridge_health(5, 1, 0, [1, 1, 1, 1, 1, 0], 0.2)}),
              "prices": Figures({"tomorrow": "complete", "stale": False, "last_success": 1.0, "requests_failed": 0}),
              "planning": Figures({**PLANNING, "planner": {**PLANNING["planner"], "clock_synchronised": True}}),
              "sync": Figures(SYNC), "tasks": Figures({"prices": {"restarts": 0}})}
    device = CollectorRegistry(auto_describe=False)
    device.register(HealthCollector(health, lambda: SystemFigures(1, 2, 3, 4.0, 96)))
    aggregator = AggregatorMetrics()
    aggregator.uploads.labels("readings", "stored").inc()
    aggregator.rows.labels("readings").inc(3)
    aggregator.upload_seconds.observe(0.1)
    aggregator.fleet.registered, aggregator.fleet.online = 1, 1
    aggregator.fleet.devices = [("d1", 1.0, 1.0)]
    text = (generate_latest(device) + generate_latest(aggregator.registry)).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("path", [RULES_FILE, DASHBOARD], ids=lambda p: p.name)
def test_only_exported_metrics_are_referenced(path: Path) -> None:
    if path.suffix == ".json":
        dashboard = json.loads(path.read_text())  # valid JSON, with panels that query
        text = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
        assert len(dashboard["panels"]) >= 8
    else:
        text = " ".join(r["expr"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"])
    referenced = set(METRIC.findall(text))
    assert referenced, f"{path.name} references no nattery metric"
    assert referenced <= exported(), f"not exported: {sorted(referenced - exported())}"
