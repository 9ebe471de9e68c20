"""The `monitoring` component: monitors that reach every service's metrics port, alert rules
that promtool accepts, a Grafana dashboard whose queries parse; KEDA still scales the worker."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_k8s_manifests import break_file, find

ALERTS = {"ImagescanRestErrorRatioHigh", "ImagescanRestLatencyHigh", "ImagescanQueueBacklogGrowing",
          "ImagescanDeadLetters", "ImagescanWorkersDown", "ImagescanRestDown", "ImagescanRedisUnreachable",
          "ImagescanRabbitMQUnreachable"}


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make venv` installs the Debian package prometheus")
    return path


def check_rules(promtool: str, groups: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    return subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_monitors_reach_every_service_and_the_annotations_agree(render):
    docs = render(("monitoring",))
    monitor = find(docs, "ServiceMonitor", "rest")
    assert monitor["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s",
                                               "scrapeTimeout": "10s"}
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    pods = find(docs, "PodMonitor", "imagescan")
    assert pods["spec"]["selector"]["matchExpressions"][0]["values"] == ["worker", "logs"]
    settings = find(docs, "ConfigMap", "imagescan-config")["data"]
    for name, port in (("rest", settings["PORT"]), ("worker", settings["METRICS_PORT"]),
                       ("logs", settings["METRICS_PORT"])):
        template = find(docs, "Deployment", name)["spec"]["template"]
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}
    policy = find(docs, "NetworkPolicy", "metrics-from-monitoring")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": int(settings["METRICS_PORT"])}]


def test_without_the_component_nothing_needs_the_operator(render):
    assert not [d for d in render(()) if d["apiVersion"].startswith("monitoring.coreos.com/")]


def test_alert_rules_pass_promtool(render, promtool, tmp_path):
    rule = find(render(("monitoring",)), "PrometheusRule", "imagescan")
    groups = rule["spec"]["groups"]
    assert {r["alert"] for group in groups for r in group["rules"]} == ALERTS
    result = check_rules(promtool, groups, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(render, promtool, tmp_path):
    groups = find(render(("monitoring",)), "PrometheusRule", "imagescan")["spec"]["groups"]
    groups[0]["rules"][0]["expr"] = "sum(rate(imagescan_http_requests_total[5m])"
    assert check_rules(promtool, groups, tmp_path).returncode != 0


def dashboard(docs: list[dict]) -> dict:
    config = find(docs, "ConfigMap", "imagescan-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(config["data"]["imagescan.json"])


def test_dashboard_parses_and_every_query_is_valid_promql(render, promtool, tmp_path):
    board = dashboard(render(("monitoring",)))
    assert board["uid"] == "imagescan" and len(board["panels"]) >= 15
    expressions = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    assert all(re.search(r"\bimagescan_", e) for e in expressions)
    # Grafana's $__rate_interval is not PromQL: a fixed range stands in for promtool.
    records = [{"record": f"panel:{i}", "expr": e.replace("$__rate_interval", "5m")}
               for i, e in enumerate(expressions)]
    result = check_rules(promtool, [{"name": "dashboard", "rules": records}], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_keda_still_scales_the_worker_with_monitoring_on(render):
    docs = render(("ingress", "rest-hpa", "worker-keda", "monitoring"))
    trigger = find(docs, "ScaledObject", "worker")["spec"]["triggers"][0]
    assert trigger["metadata"]["queueName"] == "imagescan.analyze"


BROKEN_MONITORING = {
    "service monitor port": ("components/monitoring/monitors.yaml", "    - port: http", "    - port: web",
                             "no port named 'web'"),
    "pod monitor selector": ("components/monitoring/monitors.yaml", '["worker", "logs"]', '["workers", "log"]',
                             "PodMonitor/imagescan: selector matches nothing"),
    "annotation port": ("components/monitoring/kustomization.yaml", 'prometheus.io/port: "9100"',
                        'prometheus.io/port: "9101"', "prometheus.io/port 9101 is no container port"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MONITORING))
def test_cross_check_rejects_a_broken_monitoring_copy(case, k8s_copy, render, cross_check):
    relative, old, new, expected = BROKEN_MONITORING[case]
    break_file(k8s_copy, relative, old, new)
    problems = cross_check(render(("monitoring",), k8s_dir=k8s_copy))
    assert any(expected in p for p in problems), problems


def test_strict_check_rejects_unknown_monitor_fields(k8s_copy, render, validate_schemas):
    break_file(k8s_copy, "components/monitoring/monitors.yaml", "  podMetricsEndpoints:", "  podMetricEndpoints:")
    problems = validate_schemas(render(("monitoring",), k8s_dir=k8s_copy))
    assert any("podMetricEndpoints" in p for p in problems), problems
