"""The chart's monitoring: alert rules (real promtool), their unit tests, the dashboard, the monitors.

Each PromQL expression the chart ships must name only series the operator really exports (read from its
/metrics exposition after a reconcile's worth of figures) or that Triton exports (a real tritonserver's
metrics page, tests/data), and must parse with Prometheus's own parser (promtool).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from fulcrum.api import Condition, ModelDeploymentStatus, ServingStatus, parse_model_deployment
from fulcrum.controller import telemetry
from fulcrum.controller.control import format_time
from fulcrum.dev import build as dev_build
from fulcrum.dev import prometheus as dev_prometheus
from fulcrum.metrics.window import FleetMetrics
from fulcrum.monitoring import dashboard
from fulcrum.policy import Decision, PolicyState
from fulcrum.policy.types import Config
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import LiveServer, PoolBuild
from tests.support.chart import CHART, of_kind, one, operator_container, rbac_permissions, render
from tests.support.manifest_cases import BASE

ROOT = Path(__file__).resolve().parents[2]
TRITON_METRICS = ROOT / "tests" / "data" / "triton-2.51-metrics.txt"
ALERT_TESTS = CHART / "prometheus" / "alerts_test.yaml"
DASHBOARD_FILE = CHART / "files" / "dashboards" / "fulcrum.json"
ALERTS = {
    "FulcrumSLOBurnFast",
    "FulcrumSLOBurnSlow",
    "FulcrumBudgetReached",
    "FulcrumBuildFailing",
    "FulcrumMetricsMissing",
    "FulcrumNoLeader",
}
OBSERVE: dict[str, Any] = {
    "metrics": {
        "source": "prometheus",
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Fulcrum"}},
        "serviceMonitor": {"enabled": True},
    }
}
NAME = re.compile(r"\b((?:fulcrum|nv)_[a-z0-9_]+)\b")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def sample_names(exposition: str) -> set[str]:
    """The series names of a /metrics page exactly as Prometheus stores them (no client-side renaming)."""
    return set(SAMPLE.findall(exposition))


def promtool() -> str:
    bin_dir = dev_build.find_bin_dir()
    assert bin_dir is not None, "run `fulcrum dev build` (scripts/setup does) first"
    return str(bin_dir / "promtool")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render(OBSERVE)


@pytest.fixture(scope="module")
def rules(rendered: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered PrometheusRule's groups as a plain rule file, beside a copy of the alert tests."""
    rule = one(rendered, "PrometheusRule")
    directory = tmp_path_factory.mktemp("rules")
    (directory / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(ALERT_TESTS, directory / ALERT_TESTS.name)
    return directory


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name the operator exposes once it has reconciled a ModelDeployment through a whole life."""
    spec = parse_model_deployment(copy.deepcopy(BASE)).spec
    key = ("chart-test", "ranker")
    pools = {p.name: p for p in spec.node_pools}
    decision = Decision("ScaleUp", "fp32", "l4", 2, "LoadRising", "x", PolicyState(), Config("fp32", "l4", 1))
    ready = ModelDeploymentStatus(
        conditions=[Condition(type="Ready", status="True")],
        cost_per_hour="1.7",
        serving=ServingStatus(model_name="ranker"),
    )
    for i in range(2):
        telemetry.export_model(
            key,
            spec=spec,
            previous=ModelDeploymentStatus(),
            status=ready,
            servers=[LiveServer("ranker-fp32-l4", "fp32", "l4", 2, 1)],
            builds=[
                PoolBuild(pools["l4"], "k", BuildResult("Succeeded")),
                PoolBuild(pools["cpu"], "c", job_phase="Running"),
            ],
            observed=FleetMetrics(30.0, 12.0, 1.0, 0.0, 1, 60.0),
            decision=decision,
            ticked=True,
            created=format_time(1_800_000_000),
            now=1_800_000_100.0 + 15 * i,
        )
    job = {"status": {"startTime": format_time(1_800_000_000), "completionTime": format_time(1_800_000_090)}}
    telemetry.record_build(key, "l4", "Succeeded", job)
    telemetry.record_hot_switch(key, "fp32", "fp16", 1.5)
    telemetry.RECONCILE_SECONDS.observe(0.01)
    telemetry.RECONCILE_ERRORS.inc(0)
    telemetry.API_REQUESTS.labels("GET").inc(0)
    telemetry.LEADER.set(1)
    names = sample_names(generate_latest(REGISTRY).decode())
    telemetry.forget(*key)
    return names


@pytest.fixture(scope="module")
def triton_names() -> set[str]:
    return sample_names(TRITON_METRICS.read_text())


def check_names(expressions: list[str], exported: set[str], triton: set[str]) -> None:
    for expr in expressions:
        names = set(NAME.findall(expr))
        assert names, expr
        unknown = {n for n in names if n not in exported and n not in triton}
        assert not unknown, f"{expr!r} names series nobody exports: {sorted(unknown)}"


def check_parses(expressions: list[str], directory: Path) -> None:
    """Prometheus's own parser on each expression (as recording rules; dashboard variables substituted)."""
    substituted = [
        e.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$namespace", ".*") for e in expressions
    ]
    substituted = [e.replace("$model_deployment", ".*") for e in substituted]
    groups = {
        "groups": [{"name": "check", "rules": [{"record": f"check:{i}", "expr": e} for i, e in enumerate(substituted)]}]
    }
    path = directory / "queries.yaml"
    path.write_text(yaml.safe_dump(groups))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- alerts -----------------------------------------------------------------------------------------------------


def test_rendered_rules_pass_promtool_check(rules: Path) -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules / "rules.yaml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_each_alert_has_a_passing_promtool_unit_test(rules: Path) -> None:
    rendered_alerts = {
        r["alert"] for g in yaml.safe_load((rules / "rules.yaml").read_text())["groups"] for r in g["rules"]
    }
    assert rendered_alerts == ALERTS
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case.get("exp_alerts")}
    assert firing == ALERTS, f"alerts without a test that makes them fire: {ALERTS - firing}"
    result = subprocess.run(
        [promtool(), "test", "rules", str(rules / ALERT_TESTS.name)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_name_only_exported_series(rules: Path, exported: set[str], triton_names: set[str]) -> None:
    groups = yaml.safe_load((rules / "rules.yaml").read_text())["groups"]
    check_names([r["expr"] for g in groups for r in g["rules"]], exported, triton_names)


def test_the_slo_objective_sets_the_burn_thresholds() -> None:
    strict = copy.deepcopy(OBSERVE)
    strict["metrics"]["prometheusRule"]["sloObjective"] = 0.999
    rule = one(render(strict), "PrometheusRule")
    fast = next(r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "FulcrumSLOBurnFast")
    assert fast["expr"].count("> 0.0144") == 2  # 14.4 x 0.1 %


def test_monitoring_is_off_by_default() -> None:
    objects = render()
    for kind in ("PrometheusRule", "PodMonitor", "ServiceMonitor"):
        assert not of_kind(objects, kind)
    assert not [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]


# --- dashboard --------------------------------------------------------------------------------------------------


def test_dashboard_file_is_the_generated_one() -> None:
    assert DASHBOARD_FILE.read_text() == dashboard.render(), "run: python -m fulcrum.monitoring.dashboard > " + str(
        DASHBOARD_FILE.relative_to(ROOT)
    )


def test_dashboard_config_map_carries_the_sidecar_label_and_the_json(rendered: list[dict[str, Any]]) -> None:
    config_map = one(rendered, "ConfigMap", "fulcrum-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Fulcrum"}
    assert json.loads(config_map["data"]["fulcrum.json"]) == dashboard.dashboard()


def test_dashboard_queries_name_series_the_operator_exports(
    rendered: list[dict[str, Any]], exported: set[str], triton_names: set[str], tmp_path: Path
) -> None:
    board = json.loads(one(rendered, "ConfigMap", "fulcrum-dashboard")["data"]["fulcrum.json"])
    expressions = dashboard.queries(board)
    assert len(expressions) >= 25
    check_names(expressions, exported, triton_names)
    check_parses(expressions, tmp_path)
    variables = [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    check_names(variables, exported, triton_names)
    # every family the operator exports per ModelDeployment is on the dashboard
    shown = {n for e in expressions for n in NAME.findall(e)}
    families = {n for n in exported if n.startswith("fulcrum_") and not n.endswith(("_sum", "_count", "_info"))}
    missing = {n for n in families if n not in shown and f"{n}_bucket" not in shown and not n.endswith("_bucket")}
    assert not missing, f"exported but not on the dashboard: {sorted(missing)}"


def test_dashboard_panels_fit_the_grid() -> None:
    board = dashboard.dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["description"] and panel["targets"], panel["title"]


# --- monitors ---------------------------------------------------------------------------------------------------


def test_pod_monitor_labels_triton_series_like_the_dev_prometheus(rendered: list[dict[str, Any]]) -> None:
    monitor = one(rendered, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "fulcrum",
        "app.kubernetes.io/component": "triton-server",
    }
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    chart = {(tuple(r["sourceLabels"]), r["targetLabel"]) for r in endpoint["relabelings"]}
    dev = {
        (tuple(r["source_labels"]), r["target_label"])
        for r in dev_prometheus.TRITON_RELABELING
        if r.get("target_label") not in (None, "namespace", "pod")  # prometheus-operator sets those itself
    }
    assert chart == dev


def test_pod_monitor_only_with_the_prometheus_source_and_only_in_watched_namespaces() -> None:
    scrape = copy.deepcopy(OBSERVE)
    scrape["metrics"]["source"] = "scrape"
    assert not of_kind(render(scrape), "PodMonitor")
    namespaced = {**copy.deepcopy(OBSERVE), "watchNamespaces": ["shop"]}
    monitor = one(render(namespaced), "PodMonitor")
    # Triton pods run only where ModelDeployments are served (build Jobs in the build namespace serve nothing)
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}


def test_service_monitor_keeps_the_operators_labels(rendered: list[dict[str, Any]]) -> None:
    (endpoint,) = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True


# --- /metrics over HTTPS ----------------------------------------------------------------------------------------


def test_secure_metrics_with_a_self_signed_certificate() -> None:
    objects = render({"metrics": {"secure": {"enabled": True}, "serviceMonitor": {"enabled": True}}})
    container = operator_container(objects)
    assert "--metrics-secure" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--metrics-cert-dir")]
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]
    auth = one(objects, "ClusterRole", "fulcrum-metrics-auth")
    assert rbac_permissions(auth["rules"]) == {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    binding = one(objects, "ClusterRoleBinding", "fulcrum-metrics-auth")
    assert binding["subjects"][0]["name"] == one(objects, "ServiceAccount")["metadata"]["name"]
    reader = one(objects, "ClusterRole", "fulcrum-metrics-reader")
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}


def test_secure_metrics_with_a_certificate_secret() -> None:
    secret = "fulcrum-metrics-tls"
    objects = render(
        {"metrics": {"secure": {"enabled": True, "certSecret": secret}, "serviceMonitor": {"enabled": True}}}
    )
    container = operator_container(objects)
    assert "--metrics-cert-dir=/etc/fulcrum/metrics-certs" in container["args"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "metrics-certs", "secret": {"secretName": secret}} in pod["volumes"]
    assert {"name": "metrics-certs", "mountPath": "/etc/fulcrum/metrics-certs", "readOnly": True} in container[
        "volumeMounts"
    ]
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"] == {
        "serverName": "fulcrum-metrics.fulcrum-system.svc",
        "ca": {"secret": {"name": secret, "key": "ca.crt"}},
    }


def test_plain_metrics_have_no_review_permissions() -> None:
    objects = render()
    assert not [o for o in of_kind(objects, "ClusterRole") if "metrics" in o["metadata"]["name"]]
    assert "--metrics-secure" not in operator_container(objects)["args"]
