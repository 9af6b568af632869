"""The Helm chart: lint, and what it renders for the main values combinations (helm template, no cluster)."""

from __future__ import annotations

from typing import Any

import click
import pytest
import yaml

from fulcrum.commands.run import run as run_command
from fulcrum.handlers import WATCHES
from fulcrum.resources.settings import (
    DEFAULT_BUILDER_IMAGE,
    DEFAULT_TRITON_IMAGE,
    OperatorSettings,
    RepositoryStorage,
)
from tests.support.chart import (
    CHART,
    CHART_CRD_FILE,
    CRD_FILE,
    flag_values,
    helm,
    load_yaml,
    of_kind,
    one,
    operator_container,
    rbac_permissions,
    render,
    render_error,
    with_required,
)

# What the operator sends (handlers.py watches; controller/reconciler.py writes). tests/e2e/test_chart_rbac.py
# proves on a real cluster that these suffice and that each verb is used.
MODELS = {
    ("fulcrum.dev", "modeldeployments", "list"),
    ("fulcrum.dev", "modeldeployments", "watch"),
    ("fulcrum.dev", "modeldeployments/status", "patch"),
    ("apps", "deployments", "list"),
    ("apps", "deployments", "watch"),
    ("apps", "deployments", "create"),
    ("apps", "deployments", "patch"),
    ("apps", "deployments", "delete"),
    ("", "services", "list"),
    ("", "services", "watch"),
    ("", "services", "create"),
    ("", "services", "patch"),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("discovery.k8s.io", "endpointslices", "watch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("policy", "poddisruptionbudgets", "list"),
    ("policy", "poddisruptionbudgets", "watch"),
    ("policy", "poddisruptionbudgets", "create"),
    ("policy", "poddisruptionbudgets", "patch"),
    ("", "configmaps", "list"),
    ("", "configmaps", "watch"),
    ("", "configmaps", "create"),
    ("", "configmaps", "patch"),
    ("", "events", "create"),
    # build Jobs run in the build namespace, or in a ModelDeployment's own when its spec names a Secret or claim
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "patch"),
    ("batch", "jobs", "delete"),
    # there with object storage (the default), each build Job's upload form: create only, never read
    ("", "secrets", "create"),
}
# cluster-wide, the ClusterRole's watches of every namespace see the build namespace's Jobs, records and pods
BUILD_WRITES = {
    ("batch", "jobs", "create"),
    ("batch", "jobs", "patch"),
    ("batch", "jobs", "delete"),
    ("", "configmaps", "create"),
    ("", "configmaps", "patch"),  # garbage collection marks records that fell out of use
    ("", "configmaps", "delete"),
    ("", "secrets", "create"),  # each build Job's upload form (object storage, the default): create only, never read
}
# namespaced mode: the build namespace's Jobs, records and build pods are watched by the build Role (cluster-wide:
# the ClusterRole's watches of every namespace cover them, and a grant the operator never uses is refused)
BUILD = BUILD_WRITES | {
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("", "configmaps", "list"),
    ("", "configmaps", "watch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
}
LEADER = {
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "update"),
}

NAMESPACED = {"watchNamespaces": ["shop", "ads"]}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": NAMESPACED,
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}},
    "no-crds": {"crds": {"install": False}},
    "pvc": {"repository": {"kind": "pvc", "pvc": {"claimName": "models", "create": True}}},
    "s3": {
        "repository": {
            "kind": "s3",
            "s3": {
                "uri": "s3://ml-models/fulcrum",
                "endpoint": "https://s3.internal:9000",
                "secretName": "fulcrum-s3",
                "servingSecretName": "fulcrum-s3-read",
            },
        },
        "metrics": {"source": "prometheus", "prometheusUrl": "http://prometheus.monitoring:9090"},
    },
    "s3-dev-secret": {
        "repository": {"s3": {"createSecret": True, "accessKeyId": "AK", "secretAccessKey": "SK"}},
        "build": {"namespace": "fulcrum-builds", "createNamespace": True},
    },
    "separate-build-namespace": {"build": {"namespace": "fulcrum-builds", "createNamespace": True}, **NAMESPACED},
    "observability": {
        "metrics": {
            "source": "prometheus",
            "prometheusUrl": "http://prometheus.monitoring:9090",
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "grafanaDashboard": {"enabled": True, "namespace": "grafana"},
        }
    },
    "secure-metrics": {"metrics": {"secure": {"enabled": True}, "serviceMonitor": {"enabled": True}}},
    "secure-metrics-cert": {
        "metrics": {
            "secure": {"enabled": True, "certSecret": "fulcrum-metrics-tls"},
            "serviceMonitor": {"enabled": True},
        },
        **NAMESPACED,
    },
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values) for name, values in VALUE_SETS.items()}


def operator_args(objects: list[dict[str, Any]]) -> list[str]:
    container = operator_container(objects)
    assert container["command"] == ["fulcrum"]
    args: list[str] = container["args"]
    assert args[0] == "run"
    return args[1:]


# --- lint ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(name: str) -> None:
    import json

    sets = [a for k, v in with_required(VALUE_SETS[name]).items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    result = helm("lint", "--strict", str(CHART), *sets)
    assert "0 chart(s) failed" in result.stdout


# --- CRDs ------------------------------------------------------------------------------------------------------


def test_renders_offline_without_a_kube_version() -> None:
    """`helm template fulcrum charts/fulcrum` as reviewers and GitOps renderers run it: no cluster, no
    --kube-version. helm then assumes the Kubernetes its client libraries are (1.32 for the pinned helm, stamped
    in at build time as Helm's releases are), which meets the chart's kubeVersion. The one value a platform
    must give is where repositories go (the default storage is object storage: its bucket and prefix)."""
    out = helm("template", "fulcrum", str(CHART), "--set", "repository.s3.uri=s3://ml-models/fulcrum").stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(out) if doc}
    assert {"Deployment", "CustomResourceDefinition", "ServiceAccount"} <= kinds


def test_chart_crd_file_is_the_crds_file_byte_for_byte() -> None:
    assert CHART_CRD_FILE.read_bytes() == CRD_FILE.read_bytes(), (
        "charts/fulcrum/files/crds/ is stale: cp crds/fulcrum.dev_modeldeployments.yaml charts/fulcrum/files/crds/"
    )


def test_rendered_crd_is_the_crds_file_plus_release_metadata(rendered: dict[str, list[dict[str, Any]]]) -> None:
    crd = one(rendered["defaults"], "CustomResourceDefinition")
    expected = load_yaml(CRD_FILE)
    assert crd["spec"] == expected["spec"]
    assert {k: v for k, v in crd.items() if k != "metadata"} == {k: v for k, v in expected.items() if k != "metadata"}
    assert crd["metadata"]["name"] == expected["metadata"]["name"]
    # upgradeable (templates/, so `helm upgrade` applies it) and kept on uninstall
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "fulcrum"


def test_crds_can_be_left_out_or_not_kept() -> None:
    assert not of_kind(render({"crds": {"install": False}}), "CustomResourceDefinition")
    crd = one(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
    assert not (CHART / "crds").exists(), "CRDs live in templates/ (upgradeable), not in the chart's crds/ dir"


# --- the operator Deployment -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_deployment_is_two_hardened_replicas_rolled_one_at_a_time(
    name: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    objects = rendered[name]
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # a new pod first; an old one goes only when the new one is ready (its cache synced)
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert "hostNetwork" not in pod and "hostPID" not in pod
    container = operator_container(objects)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    # a writable /tmp on the read-only root filesystem
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # the selector matches the template (and the metrics Service selects the same pod)
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()


def test_replicas_elect_a_leader_and_keep_one_through_disruptions(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    args = operator_args(objects)
    assert flag_values(args, "--leader-elect-resource-namespace") == ["fulcrum-system"]
    assert flag_values(args, "--leader-elect-resource-name") == ["fulcrum"]
    params = {p.name: p.default for p in run_command.params}
    for flag, param in (
        ("--leader-elect-lease-duration", "leader_elect_lease_duration"),
        ("--leader-elect-renew-deadline", "leader_elect_renew_deadline"),
        ("--leader-elect-retry-period", "leader_elect_retry_period"),
    ):
        assert flag_values(args, flag) == [f"{params[param]:g}"], flag
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    anti = one(objects, "Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    single = render({"operator": {"replicas": 1, "leaderElection": {"enabled": False}}})
    assert not of_kind(single, "PodDisruptionBudget")
    assert "--no-leader-elect" in operator_args(single)
    assert not [r for r in of_kind(single, "Role") if r["metadata"]["name"].endswith("-leader")]


def test_readiness_waits_for_the_cache(rendered: dict[str, list[dict[str, Any]]]) -> None:
    container = operator_container(rendered["defaults"])
    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": "/readyz", "port": "health"}


def test_lease_rbac_is_namespaced_and_named(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    role = one(objects, "Role", "fulcrum-leader")
    assert role["metadata"]["namespace"] == "fulcrum-system"
    assert rbac_permissions(role["rules"]) == LEADER
    named = [r for r in role["rules"] if set(r["verbs"]) & {"get", "update"}]
    assert named and all(r["resourceNames"] == ["fulcrum"] for r in named)  # only its own Lease
    assert all("resourceNames" not in r for r in role["rules"] if r["verbs"] == ["create"])
    binding = one(objects, "RoleBinding", "fulcrum-leader")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fulcrum-leader"}
    assert not any(g == "coordination.k8s.io" for g, _r, _v in rbac_permissions(one(objects, "ClusterRole")["rules"]))


def test_openshift_can_assign_the_uid() -> None:
    pod = one(render({"podSecurityContext": {"runAsUser": None, "runAsGroup": None}}), "Deployment")
    security = pod["spec"]["template"]["spec"]["securityContext"]
    assert security == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsUser" in render_error({"podSecurityContext": {"runAsUser": 0}})


def test_liveness_probe_hits_the_operators_liveness_endpoint(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    container = operator_container(objects)
    (liveness,) = flag_values(operator_args(objects), "--liveness")
    assert liveness == "http://0.0.0.0:8080/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # restarted when it stops answering; Ready once every watch has listed (a leader or a warm standby)
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container[kind]["httpGet"]
        assert probe["path"] == path
        assert ports[probe["port"]] == 8080

    moved = render({"operator": {"livenessPort": 8181}})
    assert flag_values(operator_args(moved), "--liveness") == ["http://0.0.0.0:8181/healthz"]
    assert {p["name"]: p["containerPort"] for p in operator_container(moved)["ports"]}["health"] == 8181


def test_defaults_are_the_operators_defaults(rendered: dict[str, list[dict[str, Any]]]) -> None:
    args = operator_args(rendered["defaults"])
    defaults = OperatorSettings()
    assert flag_values(args, "--triton-image") == [DEFAULT_TRITON_IMAGE]
    assert flag_values(args, "--builder-image") == [DEFAULT_BUILDER_IMAGE]
    assert flag_values(args, "--build-target") == [defaults.build_target]
    assert flag_values(args, "--build-namespace") == ["fulcrum-system"]  # the release namespace
    assert flag_values(args, "--repository") == ["s3://models/fulcrum"]  # the one value without a default
    assert flag_values(args, "--storage-image") == [operator_container(rendered["defaults"])["image"]]
    assert flag_values(args, "--workers") == ["8"]
    assert flag_values(args, "--metrics-source") == ["scrape"]
    params = {p.name: p.default for p in run_command.params}
    assert flag_values(args, "--build-retention-days") == [f"{params['build_retention_days']:g}"]
    assert flag_values(args, "--tick-seconds") == [f"{params['tick_seconds']:g}"]
    assert flag_values(args, "--metrics-port") == [str(params["metrics_port"])]
    assert flag_values(args, "--metrics-source") == [params["metrics_source"]]
    assert flag_values(args, "--namespace") == []  # cluster-wide


def test_every_rendered_flag_is_one_that_fulcrum_run_accepts(rendered: dict[str, list[dict[str, Any]]]) -> None:
    known = {opt for param in run_command.params for opt in getattr(param, "opts", [])}
    for name, objects in rendered.items():
        args = operator_args(objects)
        unknown = sorted({a.split("=", 1)[0] for a in args} - known)
        assert not unknown, f"{name}: the chart passes flags `fulcrum run` does not have: {unknown}"
        # and click parses them (types, choices)
        run_command.make_context("run", list(args), resilient_parsing=False)


@pytest.mark.parametrize(
    ("repository", "flag"),
    [
        ({"kind": "hostPath", "hostPath": "/srv/models"}, "hostpath:///srv/models"),
        ({"kind": "pvc", "pvc": {"claimName": "model-repo"}}, "pvc://model-repo"),
        ({"kind": "s3", "s3": {"uri": "s3://bucket/fulcrum"}}, "s3://bucket/fulcrum"),
        ({"kind": "s3", "s3": {"uri": "gs://bucket/fulcrum"}}, "gs://bucket/fulcrum"),
    ],
)
def test_repository_storage_kinds(repository: dict[str, Any], flag: str) -> None:
    args = operator_args(render({"repository": repository}))
    assert flag_values(args, "--repository") == [flag]
    storage = RepositoryStorage.parse(flag)
    assert storage.kind == repository["kind"]
    assert bool(flag_values(args, "--s3-region")) == (storage.kind == "s3")


def test_there_is_no_default_storage_and_the_error_says_what_to_set() -> None:
    error = render_error({}, required=False)
    assert "repository.s3.uri is required" in error and "s3://" in error


def test_s3_values_reach_the_operator_and_the_secret_never_its_command_line(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    args = operator_args(rendered["s3"])
    assert flag_values(args, "--repository") == ["s3://ml-models/fulcrum"]
    assert flag_values(args, "--s3-endpoint") == ["https://s3.internal:9000"]
    assert flag_values(args, "--repository-secret") == ["fulcrum-s3"]
    assert flag_values(args, "--serving-secret") == ["fulcrum-s3-read"]
    # the operator reads the build credentials for garbage collection; optional, so it starts without them
    assert operator_container(rendered["s3"])["envFrom"] == [{"secretRef": {"name": "fulcrum-s3", "optional": True}}]
    assert not of_kind(rendered["s3"], "Secret")


def test_a_dev_secret_is_rendered_where_builds_and_the_operator_run(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["s3-dev-secret"]
    secrets = of_kind(objects, "Secret")
    assert {s["metadata"]["namespace"] for s in secrets} == {"fulcrum-system", "fulcrum-builds"}
    assert {s["metadata"]["name"] for s in secrets} == {"fulcrum-repository"}
    assert secrets[0]["stringData"] == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    args = operator_args(objects)
    assert flag_values(args, "--repository-secret") == ["fulcrum-repository"]
    assert all("SK" not in a for a in args)


def test_the_chart_can_create_the_claim(rendered: dict[str, list[dict[str, Any]]]) -> None:
    claim = one(rendered["pvc"], "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "models" and claim["metadata"]["namespace"] == "fulcrum-system"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not of_kind(render({"repository": {"kind": "pvc", "pvc": {"claimName": "models"}}}), "PersistentVolumeClaim")


def test_only_object_storage_may_create_secrets(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Upload forms exist only for object storage: with a claim the operator may not create a Secret anywhere."""
    roles = of_kind(rendered["pvc"], "ClusterRole") + of_kind(rendered["pvc"], "Role")
    assert roles and not any(p[1] == "secrets" for r in roles for p in rbac_permissions(r["rules"]))
    defaults = of_kind(rendered["defaults"], "ClusterRole") + of_kind(rendered["defaults"], "Role")
    granted = [r["metadata"]["name"] for r in defaults if ("", "secrets", "create") in rbac_permissions(r["rules"])]
    assert granted == ["fulcrum", "fulcrum-build"]


def test_metrics_source_prometheus_carries_its_url() -> None:
    args = operator_args(render({"metrics": {"source": "prometheus", "prometheusUrl": "http://prom:9090"}}))
    assert flag_values(args, "--metrics-source") == ["prometheus=http://prom:9090"]
    assert flag_values(args, "--metrics-window-seconds") == []  # the source's own default
    values = {"metrics": {"source": "prometheus", "prometheusUrl": "http://p", "windowSeconds": 60}}
    wider = operator_args(render(values))
    assert flag_values(wider, "--metrics-window-seconds") == ["60"]


def test_the_pod_monitor_scrapes_at_least_twice_per_rate_window() -> None:
    """The operator's rate() range must hold two scrapes: the default leaves three, a longer interval is refused
    with both values named, and a wider window allows it."""
    prometheus = {"source": "prometheus", "prometheusUrl": "http://p"}
    monitor = one(render({"metrics": prometheus}), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "10s"
    slow = {**prometheus, "podMonitor": {"interval": "20s"}}
    error = render_error({"metrics": slow})
    assert "metrics.podMonitor.interval 20s" in error and "metrics.windowSeconds, 30s" in error, error
    assert "at most every 15s" in error
    wider = one(render({"metrics": {**slow, "windowSeconds": 60}}), "PodMonitor")
    assert wider["spec"]["podMetricsEndpoints"][0]["interval"] == "20s"


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"metrics": {"podMonitor": {"interval": "1m"}}}, "interval"),
        ({"repository": {"kind": "nfs"}}, "kind"),
        ({"repository": {"kind": "uri"}}, "kind"),
        ({"repository": {"s3": {"uri": "http://bucket"}}}, "uri"),
        ({"repository": {"s3": {"uri": ""}}}, "repository.s3.uri is required"),
        ({"repository": {"s3": {"createSecret": True}}}, "accessKeyId"),
        ({"repository": {"s3": {"endpoint": "s3.internal"}}}, "endpoint"),
        ({"build": {"retentionDays": -1}}, "retentionDays"),
        ({"metrics": {"source": "prometheus"}}, "prometheusUrl"),
        ({"metrics": {"windowSeconds": 0.5}}, "windowSeconds"),
        ({"metrics": {"windowSeconds": "30s"}}, "windowSeconds"),
        ({"operator": {"workers": 0}}, "workers"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"build": {"target": "tensorrt"}}, "target"),
        ({"replicas": 2}, "replicas"),  # one replica, by design: not a value
        ({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}, "serviceMonitor"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(values: dict[str, Any], error: str) -> None:
    assert error in render_error(values)


# --- RBAC ------------------------------------------------------------------------------------------------------


def _no_wildcards(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    cluster_role = one(objects, "ClusterRole")
    _no_wildcards(cluster_role["rules"])
    assert rbac_permissions(cluster_role["rules"]) == MODELS
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    sa = one(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    build_role = one(objects, "Role", "fulcrum-build")
    assert build_role["metadata"]["namespace"] == "fulcrum-system"
    _no_wildcards(build_role["rules"])
    assert rbac_permissions(build_role["rules"]) == BUILD_WRITES
    build_binding = one(objects, "RoleBinding", "fulcrum-build")
    assert build_binding["roleRef"]["name"] == build_role["metadata"]["name"]
    assert build_binding["metadata"]["namespace"] == "fulcrum-system"
    assert build_binding["subjects"] == binding["subjects"]


def test_namespaced_mode_has_no_cluster_wide_access(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["namespaced"]
    assert not of_kind(objects, "ClusterRole")
    assert not of_kind(objects, "ClusterRoleBinding")
    # build Jobs and records are watched in the build namespace by the build Role alone
    assert flag_values(operator_args(objects), "--namespace") == ["shop", "ads"]
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(objects, "Role")}
    assert set(roles) == {
        ("shop", "fulcrum"),
        ("ads", "fulcrum"),
        ("fulcrum-system", "fulcrum-build"),
        ("fulcrum-system", "fulcrum-leader"),
    }
    expected = {"fulcrum-build": BUILD, "fulcrum-leader": LEADER}
    for (_ns, name), role in roles.items():
        if name != "fulcrum-leader":
            _no_wildcards(role["rules"])
        assert rbac_permissions(role["rules"]) == expected.get(name, MODELS)
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in of_kind(objects, "RoleBinding")}
    assert bindings == set(roles)
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "fulcrum-system"


def test_separate_build_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["separate-build-namespace"]
    assert one(objects, "Namespace")["metadata"]["name"] == "fulcrum-builds"
    args = operator_args(objects)
    assert flag_values(args, "--build-namespace") == ["fulcrum-builds"]
    assert flag_values(args, "--namespace") == ["shop", "ads"]
    build_role = one(objects, "Role", "fulcrum-build")
    assert build_role["metadata"]["namespace"] == "fulcrum-builds"
    assert not of_kind(render({"build": {"namespace": "fulcrum-system", "createNamespace": True}}), "Namespace")


def test_every_watched_kind_can_be_listed_and_watched(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Ties the RBAC to the code: a new watch without a rule fails here, before a cluster says 403."""
    assert ("fulcrum.dev", "modeldeployments") in {(w.group, w.resource) for w in WATCHES}
    everywhere = rbac_permissions(one(rendered["defaults"], "ClusterRole")["rules"])
    # the build namespace is watched apart from the served ones in namespaced mode (cluster-wide, "everywhere")
    build = rbac_permissions(one(rendered["namespaced"], "Role", "fulcrum-build")["rules"])
    for watch in WATCHES:
        verbs = {(watch.group, watch.resource, "list"), (watch.group, watch.resource, "watch")}
        if watch.in_models:
            assert verbs <= everywhere, watch
        if watch.in_builds:  # cluster-wide, the ClusterRole (bound everywhere) covers the build namespace too
            assert verbs <= build | everywhere, watch


def test_owner_reference_enforcement_adds_finalizers_update() -> None:
    objects = render({"rbac": {"ownerReferencesPermissionEnforcement": True}})
    granted = rbac_permissions(one(objects, "ClusterRole")["rules"])
    assert granted - MODELS == {("fulcrum.dev", "modeldeployments/finalizers", "update")}


def test_rbac_and_service_account_can_be_brought_by_the_platform() -> None:
    objects = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "platform-sa"}})
    assert (
        not of_kind(objects, "ClusterRole") and not of_kind(objects, "Role") and not of_kind(objects, "ServiceAccount")
    )
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-sa"


# --- metrics ---------------------------------------------------------------------------------------------------


def test_metrics_service_targets_the_operators_metrics_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    service = one(objects, "Service")
    container = operator_container(objects)
    assert flag_values(operator_args(objects), "--metrics-port") == ["9090"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9090
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9090 and port["targetPort"] == "metrics"
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not of_kind(objects, "ServiceMonitor")


def test_service_monitor_selects_the_metrics_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["service-monitor"]
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


# --- what every object shares ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_objects_carry_release_labels_and_namespaces(name: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}
    for obj in rendered[name]:
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "fulcrum", obj["kind"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", obj["kind"]
        assert ("namespace" in meta) == (obj["kind"] not in cluster_scoped), (obj["kind"], meta)


def test_click_is_the_parser_of_fulcrum_run() -> None:
    # make_context above only proves something if `run` is a click command taking these options
    assert isinstance(run_command, click.Command)
    with pytest.raises(click.exceptions.NoSuchOption):
        run_command.make_context("run", ["--no-such-flag=1"])
