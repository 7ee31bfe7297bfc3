"""Builders against golden YAML, plus the invariants every child must keep.

Regenerate the golden files after an intended change with
``KUBESERVE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/builders`` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api.v1alpha1 import InferenceService, variant_predictor
from kubeserve.builders import MissingRevisionError, RouteUnsupported, build_children, url
from kubeserve.builders.route import http_route, nginx_ingresses
from kubeserve.config import OperatorConfig
from kubeserve.plan import Backend, HeaderRoute, Mirror, TrafficPlan, Workload
from kubeserve_runtime import contract

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("KUBESERVE_UPDATE_GOLDEN") == "1"
Predictors = dict[tuple[str, str], dict[str, Any]]


def load(name: str) -> dict[str, Any]:
    """Load an InferenceService input."""
    obj: dict[str, Any] = yaml.safe_load((GOLDEN / "inputs" / f"{name}.yaml").read_text())
    return obj


def iris_case() -> tuple[dict[str, Any], TrafficPlan, Predictors, OperatorConfig]:
    """A fresh minimal InferenceService: one revision at 100%."""
    obj = load("iris")
    plan = TrafficPlan(
        workloads=(Workload("predictor", "1a2b3c4d", 1, 1),),
        backends=(Backend("predictor", "1a2b3c4d", 100),),
    )
    return obj, plan, {("predictor", "1a2b3c4d"): obj["spec"]["predictor"]}, OperatorConfig()


def fraud_case(
    mode: str = "gateway",
) -> tuple[dict[str, Any], TrafficPlan, Predictors, OperatorConfig]:
    """Everything on the predictor, mid-canary: stable 90% (autoscaled), canary 10%."""
    obj = load("fraud")
    stable = copy.deepcopy(obj["spec"]["predictor"])
    stable["model"]["storageUri"] = "pvc://models/fraud/v1"
    plan = TrafficPlan(
        workloads=(
            Workload("predictor", "aaaa1111", 2, 6),
            Workload("predictor", "bbbb2222", 1, 1),
        ),
        backends=(Backend("predictor", "aaaa1111", 90), Backend("predictor", "bbbb2222", 10)),
    )
    predictors = {
        ("predictor", "aaaa1111"): stable,
        ("predictor", "bbbb2222"): obj["spec"]["predictor"],
    }
    config = OperatorConfig(
        ingress_mode=mode,
        gateway_namespace="gateways",
        gateway_section_name="http",
        domain_template="{name}-{namespace}.models.example.com",
        runtime_image="registry.example.com/kubeserve/runtime:0.1.0",
    )
    return obj, plan, predictors, config


def reco_case() -> tuple[dict[str, Any], TrafficPlan, Predictors, OperatorConfig]:
    """A/B: a weighted, header-matched custom-container variant and a mirrored shadow
    that inherits the main predictor's payload logger (as the rollout policy passes it)."""
    obj = load("reco")
    spec = obj["spec"]
    plan = TrafficPlan(
        workloads=(
            Workload("predictor", "0000aaaa", 1, 4),
            Workload("b", "0000bbbb", 1, 1),
            Workload("shadow", "0000cccc", 1, 1),
        ),
        backends=(Backend("predictor", "0000aaaa", 80), Backend("b", "0000bbbb", 20)),
        header_routes=(HeaderRoute((("x-model-variant", "b"),), Backend("b", "0000bbbb", 100)),),
        mirror=Mirror(Backend("shadow", "0000cccc", 0), 25),
    )
    predictors = {
        ("predictor", "0000aaaa"): spec["predictor"],
        ("b", "0000bbbb"): spec["variants"][0]["predictor"],
        ("shadow", "0000cccc"): variant_predictor(
            spec["variants"][1]["predictor"], spec["predictor"]
        ),
    }
    return obj, plan, predictors, OperatorConfig()


SA_AUTH = {"mode": "serviceAccount", "audience": "iris", "allow": ["apps/web", "batch/*"]}


def iris_sa_case() -> tuple[dict[str, Any], TrafficPlan, Predictors, OperatorConfig]:
    """The minimal case behind ServiceAccount-token auth."""
    obj, plan, predictors, config = iris_case()
    obj["spec"]["auth"] = dict(SA_AUTH)
    return obj, plan, predictors, config


CASES: dict[str, Callable[[], tuple[dict[str, Any], TrafficPlan, Predictors, OperatorConfig]]] = {
    "iris-gateway": iris_case,
    "iris-serviceaccount-auth": iris_sa_case,
    "fraud-canary-gateway": fraud_case,
    "fraud-canary-nginx": lambda: fraud_case("nginx"),
    "reco-ab-mirror-gateway": reco_case,
}


def build(case: str) -> list[dict[str, Any]]:
    """Build the children of one case."""
    obj, plan, predictors, config = CASES[case]()
    return build_children(InferenceService.model_validate(obj), plan, predictors, config)


@pytest.mark.parametrize("case", sorted(CASES))
def test_children_match_golden_yaml(case: str) -> None:
    """The rendered children equal the reviewed golden file."""
    text = yaml.safe_dump_all(build(case), sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.read_text() == text, f"golden {path.name} differs (KUBESERVE_UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_builders_are_deterministic_and_pure(case: str) -> None:
    """Same inputs give the same output, and the input object is not mutated."""
    obj, plan, predictors, config = CASES[case]()
    before = copy.deepcopy(obj)
    isvc = InferenceService.model_validate(obj)
    assert build_children(isvc, plan, predictors, config) == build_children(
        isvc, plan, predictors, config
    )
    assert obj == before


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_is_owned_and_labelled(case: str) -> None:
    """Owner reference (controller) and the kubeserve labels on every child."""
    obj = CASES[case]()[0]
    for child in build(case):
        meta = child["metadata"]
        assert meta["namespace"] == obj["metadata"]["namespace"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "serving.kubeserve.io/v1alpha1",
                "kind": "InferenceService",
                "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["serving.kubeserve.io/inferenceservice"] == obj["metadata"]["name"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubeserve"
        assert meta["labels"]["app.kubernetes.io/instance"] == obj["metadata"]["name"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_pass_pod_security_restricted(case: str) -> None:
    """Every container: non-root, no escalation, no capabilities, seccomp, read-only root."""
    deployments = [c for c in build(case) if c["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod.get("initContainers", []) + pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["runAsNonRoot"] is True
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "privileged" not in ctx
        for volume in pod["volumes"]:
            assert "hostPath" not in volume


def by_kind(children: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Children of one kind by name."""
    return {c["metadata"]["name"]: c for c in children if c["kind"] == kind}


def test_runtime_pod_configuration() -> None:
    """Init download, KUBESERVE_* env, probes, secret mounts, PVC link, user env override."""
    children = build("fraud-canary-gateway")
    canary = by_kind(children, "Deployment")["fraud-predictor-bbbb2222"]
    pod = canary["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["args"] == ["download", "pvc://models/fraud/v2", "/mnt/models", "--link"]
    assert {
        "name": "KUBESERVE_STORAGE_SECRET_DIR",
        "value": "/var/run/secrets/kubeserve/storage",
    } in init["env"]
    (runtime,) = pod["containers"]
    assert runtime["image"] == "registry.example.com/kubeserve/runtime:0.2.0"
    assert runtime["args"] == ["serve"]
    env = {e["name"]: e.get("value") for e in runtime["env"]}
    assert len(env) == len(runtime["env"]), "duplicate env names break server-side apply"
    assert env["KUBESERVE_MODEL_VERSION"] == "bbbb2222"
    assert env["KUBESERVE_MODEL_NAME"] == "fraud-detector"  # the user's value wins
    assert env["KUBESERVE_MAX_BATCH_SIZE"] == "16"
    assert env["KUBESERVE_AUTH_TOKEN_FILE"] == "/var/run/secrets/kubeserve/auth/tokens"
    assert yaml.safe_load(env["KUBESERVE_INPUT_SCHEMA"])["inputs"][0]["shape"] == [-1, 30]
    assert runtime["readinessProbe"]["httpGet"] == {
        "path": "/v2/health/ready",
        "port": 8080,
        "scheme": "HTTP",
    }
    assert runtime["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    mounts = {m["mountPath"]: m for m in runtime["volumeMounts"]}
    assert mounts["/mnt/pvc/models"]["readOnly"] is True
    assert (
        "/var/run/secrets/kubeserve/storage" not in mounts
    )  # credentials stay in the init container
    annotations = canary["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8082"


def test_replicas_hpa_and_pdb() -> None:
    """Deployments start at the plan's minimum; autoscaled ones get an HPA, a PDB when min > 1."""
    children = build("fraud-canary-gateway")
    deployments = by_kind(children, "Deployment")
    assert deployments["fraud-predictor-aaaa1111"]["spec"]["replicas"] == 2
    assert deployments["fraud-predictor-bbbb2222"]["spec"]["replicas"] == 1
    hpas = by_kind(children, "HorizontalPodAutoscaler")
    assert list(hpas) == ["fraud-predictor-aaaa1111"]
    hpa = hpas["fraud-predictor-aaaa1111"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "kubeserve_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "40"},
            },
        }
    ]
    assert list(by_kind(children, "PodDisruptionBudget")) == ["fraud-predictor-aaaa1111"]
    iris = build("iris-gateway")
    assert by_kind(iris, "HorizontalPodAutoscaler") == {}
    assert by_kind(iris, "PodDisruptionBudget") == {}


def test_cpu_scaling_uses_utilisation() -> None:
    """cpu/memory scale on average utilisation of requests."""
    obj, _, predictors, config = iris_case()
    plan = TrafficPlan(
        workloads=(Workload("predictor", "1a2b3c4d", 1, 3),),
        backends=(Backend("predictor", "1a2b3c4d", 100),),
    )
    (hpa,) = by_kind(
        build_children(InferenceService.model_validate(obj), plan, predictors, config),
        "HorizontalPodAutoscaler",
    ).values()
    assert hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }


def test_scaled_to_zero_workload_is_kept_without_hpa() -> None:
    """A 0/0 workload (kept for rollback) is a Deployment with 0 replicas, no HPA/PDB."""
    obj, plan, predictors, config = fraud_case()
    plan = TrafficPlan(
        workloads=(
            Workload("predictor", "aaaa1111", 2, 6),
            Workload("predictor", "bbbb2222", 0, 0),
        ),
        backends=(Backend("predictor", "aaaa1111", 100), Backend("predictor", "bbbb2222", 0)),
    )
    children = build_children(InferenceService.model_validate(obj), plan, predictors, config)
    assert by_kind(children, "Deployment")["fraud-predictor-bbbb2222"]["spec"]["replicas"] == 0
    assert "fraud-predictor-bbbb2222" not in by_kind(children, "HorizontalPodAutoscaler")


def test_http_route_weights_headers_and_mirror() -> None:
    """Header rules first, then the weighted default rule with the mirror filter."""
    route = by_kind(build("reco-ab-mirror-gateway"), "HTTPRoute")["reco"]["spec"]
    assert route["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "kubeserve"}
    ]
    assert route["hostnames"] == ["reco.shop.example.com"]
    header_rule, default_rule = route["rules"]
    assert header_rule["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "Exact", "name": "x-model-variant", "value": "b"}],
        }
    ]
    assert [r["name"] for r in header_rule["backendRefs"]] == ["reco-b-0000bbbb"]
    # Header-matched requests are marked, so an experiment leaves them out.
    assert header_rule["filters"] == [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": contract.ROUTED_HEADER, "value": contract.ROUTED_BY_HEADER}]
            },
        }
    ]
    assert [(r["name"], r["weight"]) for r in default_rule["backendRefs"]] == [
        ("reco-predictor-0000aaaa", 80),
        ("reco-b-0000bbbb", 20),
    ]
    for ref in default_rule["backendRefs"]:
        assert (ref["group"], ref["kind"], ref["port"]) == ("", "Service", 8080)
    (mirror,) = default_rule["filters"]
    assert mirror == {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {
                "group": "",
                "kind": "Service",
                "name": "reco-shadow-0000cccc",
                "port": 8080,
            },
            "percent": 25,
        },
    }


def test_mirror_modes_for_older_gateway_apis() -> None:
    """`fraction` for APIs with fractions; `full` refuses a partial mirror clearly."""
    obj, plan, _, _ = reco_case()
    isvc = InferenceService.model_validate(obj)
    fraction = http_route(isvc, plan, OperatorConfig(gateway_mirror_mode="fraction"))
    mirror = fraction["spec"]["rules"][-1]["filters"][0]["requestMirror"]
    assert mirror["fraction"] == {"numerator": 25, "denominator": 100}
    with pytest.raises(RouteUnsupported, match=r"mirror\.percent 25 needs RequestMirror percent"):
        http_route(isvc, plan, OperatorConfig(gateway_mirror_mode="full"))
    full_plan = TrafficPlan(
        plan.workloads,
        plan.backends,
        plan.header_routes,
        Mirror(plan.mirror.backend, 100) if plan.mirror else None,
    )
    full = http_route(isvc, full_plan, OperatorConfig(gateway_mirror_mode="full"))
    assert "percent" not in full["spec"]["rules"][-1]["filters"][0]["requestMirror"]


def test_in_cluster_service_selects_the_majority_revision() -> None:
    """The <isvc> Service selects the main predictor's highest-weight revision."""
    service = by_kind(build("fraud-canary-gateway"), "Service")["fraud"]
    assert service["spec"]["selector"] == {
        "serving.kubeserve.io/inferenceservice": "fraud",
        "serving.kubeserve.io/variant": "predictor",
        "serving.kubeserve.io/revision": "aaaa1111",
    }
    assert [p["appProtocol"] for p in service["spec"]["ports"]] == ["http", "kubernetes.io/h2c"]


def test_nginx_main_and_canary_ingresses() -> None:
    """Main Ingress to the stable revision, canary Ingress with the canary weight."""
    ingresses = by_kind(build("fraud-canary-nginx"), "Ingress")
    assert sorted(ingresses) == ["fraud", "fraud-canary"]
    main_backend = ingresses["fraud"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert main_backend["service"]["name"] == "fraud-predictor-aaaa1111"
    assert "annotations" not in ingresses["fraud"]["metadata"]
    canary = ingresses["fraud-canary"]
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "10",
        "nginx.ingress.kubernetes.io/canary-weight-total": "100",
    }
    assert canary["spec"]["rules"][0]["host"] == "fraud-risk.models.example.com"
    assert canary["spec"]["ingressClassName"] == "nginx"


def test_variant_pods_name_their_component_without_feedback_or_logger() -> None:
    """A variant's runtime learns its component (the metrics' variant label) even with
    neither feedback nor a logger; the main predictor's pods keep the runtime default."""
    obj, plan, predictors, config = reco_case()
    del obj["spec"]["feedback"]
    for spec in (obj["spec"]["predictor"], *predictors.values()):
        spec.pop("logger", None)
    isvc = InferenceService.model_validate(obj)
    deployments = by_kind(build_children(isvc, plan, predictors, config), "Deployment")

    def component(name: str) -> list[str]:
        (runtime,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        return [e["value"] for e in runtime["env"] if e["name"] == contract.ENV_COMPONENT]

    assert component("reco-shadow-0000cccc") == ["shadow"]
    assert component("reco-predictor-0000aaaa") == []


def test_nginx_header_canary() -> None:
    """A header route alone becomes a canary-by-header Ingress."""
    obj, plan, _, _ = reco_case()
    isvc = InferenceService.model_validate(obj)
    header_only = TrafficPlan(
        plan.workloads,
        (Backend("predictor", "0000aaaa", 100), Backend("b", "0000bbbb", 0)),
        plan.header_routes,
    )
    main, canary = nginx_ingresses(isvc, header_only, OperatorConfig(ingress_mode="nginx"))
    assert main["metadata"]["name"] == "reco"
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-by-header": "x-model-variant",
        "nginx.ingress.kubernetes.io/canary-by-header-value": "b",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("mirror", r"mirrors every request or none, but mirror\.percent is 25"),
        ("three-way", "one canary per host, but traffic is split across 3 backends"),
        ("header-elsewhere", "header route goes to reco-shadow-0000cccc"),
        ("two-headers", "by one header, but the route to reco-b-0000bbbb needs 2"),
        ("nothing", "no backend receives traffic"),
    ],
)
def test_nginx_refuses_what_it_cannot_express(change: str, message: str) -> None:
    """Plans beyond one canary per host are refused with a message for the status."""
    obj, plan, _, _ = reco_case()
    isvc = InferenceService.model_validate(obj)
    b, shadow = Backend("b", "0000bbbb", 20), Backend("shadow", "0000cccc", 10)
    plans = {
        "mirror": plan,
        "three-way": TrafficPlan(plan.workloads, (Backend("predictor", "0000aaaa", 70), b, shadow)),
        "header-elsewhere": TrafficPlan(
            plan.workloads, plan.backends, (HeaderRoute((("x", "y"),), shadow),)
        ),
        "two-headers": TrafficPlan(
            plan.workloads, plan.backends, (HeaderRoute((("x", "1"), ("y", "2")), b),)
        ),
        "nothing": TrafficPlan(plan.workloads, (Backend("predictor", "0000aaaa", 0),)),
    }
    with pytest.raises(RouteUnsupported, match=message):
        nginx_ingresses(isvc, plans[change], OperatorConfig(ingress_mode="nginx"))
    assert RouteUnsupported.reason == "UnsupportedByIngress"


def test_routes_can_be_left_out_and_none_mode() -> None:
    """routes=False skips route objects; ingress mode none keeps only Services."""
    obj, plan, predictors, config = reco_case()
    kinds = {
        c["kind"]
        for c in build_children(
            InferenceService.model_validate(obj), plan, predictors, config, routes=False
        )
    }
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"}
    none = OperatorConfig(ingress_mode="none")
    children = build_children(InferenceService.model_validate(obj), plan, predictors, none)
    assert "HTTPRoute" not in {c["kind"] for c in children}
    assert "reco" in by_kind(children, "Service")
    isvc = InferenceService.model_validate(obj)
    assert url(isvc, none) == "http://reco.shop.svc.cluster.local:8080"
    assert url(isvc, OperatorConfig(url_scheme="https")) == "https://reco.shop.example.com"


def test_missing_predictor_spec_is_an_error() -> None:
    """A workload without a predictor spec is refused, naming the revision."""
    obj, plan, _, config = iris_case()
    with pytest.raises(MissingRevisionError, match="revision 1a2b3c4d of predictor"):
        build_children(InferenceService.model_validate(obj), plan, {}, config)


def test_unknown_uid_leaves_out_owner_references() -> None:
    """Rendering a file without metadata.uid gives children without ownerReferences."""
    obj, plan, predictors, config = iris_case()
    del obj["metadata"]["uid"]
    assert all(
        "ownerReferences" not in c["metadata"]
        for c in build_children(InferenceService.model_validate(obj), plan, predictors, config)
    )


def pod_specs(case: str) -> dict[str, dict[str, Any]]:
    """Each Deployment's pod spec by Deployment name."""
    return {
        name: d["spec"]["template"]["spec"]
        for name, d in by_kind(build(case), "Deployment").items()
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env as a name -> value mapping."""
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_shutdown_delay_keeps_serving_within_the_grace_period() -> None:
    """The runtime gets the delay and drain; the grace period covers both plus a margin."""
    iris = pod_specs("iris-gateway")["iris-predictor-1a2b3c4d"]
    env = env_of(iris["containers"][0])
    assert (env["KUBESERVE_SHUTDOWN_DELAY_SECONDS"], env["KUBESERVE_DRAIN_TIMEOUT_SECONDS"]) == (
        "5",
        "30",
    )
    assert iris["terminationGracePeriodSeconds"] == 5 + 30 + 10
    fraud = pod_specs("fraud-canary-gateway")["fraud-predictor-bbbb2222"]
    assert env_of(fraud["containers"][0])["KUBESERVE_SHUTDOWN_DELAY_SECONDS"] == "20"
    assert fraud["terminationGracePeriodSeconds"] == 20 + 30 + 10
    reco = pod_specs("reco-ab-mirror-gateway")
    assert (
        env_of(reco["reco-shadow-0000cccc"]["containers"][0])["KUBESERVE_SHUTDOWN_DELAY_SECONDS"]
        == "0"
    )
    custom = reco["reco-b-0000bbbb"]
    assert "env" not in custom["containers"][0]  # a custom container handles SIGTERM itself
    assert custom["terminationGracePeriodSeconds"] == 5 + 30 + 10
    for case in CASES:
        for pod in pod_specs(case).values():
            for container in pod["containers"]:
                env = env_of(container)
                if "KUBESERVE_SHUTDOWN_DELAY_SECONDS" in env:
                    assert pod["terminationGracePeriodSeconds"] > float(
                        env["KUBESERVE_SHUTDOWN_DELAY_SECONDS"]
                    ) + float(env["KUBESERVE_DRAIN_TIMEOUT_SECONDS"])


def test_model_volume_is_sized_and_the_download_knows_the_limit() -> None:
    """emptyDirs carry size limits; the initializer gets the model limit in bytes."""
    iris = pod_specs("iris-gateway")["iris-predictor-1a2b3c4d"]
    volumes = {v["name"]: v for v in iris["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "10Gi"}  # the API default
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "1Gi"}
    (init,) = iris["initContainers"]
    assert env_of(init)["KUBESERVE_MAX_MODEL_BYTES"] == str(10 * 1024**3)
    fraud = pod_specs("fraud-canary-gateway")["fraud-predictor-bbbb2222"]
    volumes = {v["name"]: v for v in fraud["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "2Gi"}  # 2048Mi as the API stores it
    assert env_of(fraud["initContainers"][0])["KUBESERVE_MAX_MODEL_BYTES"] == str(2 * 1024**3)
    for case in CASES:
        for pod in pod_specs(case).values():
            assert all("sizeLimit" in v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v)


def test_replicas_spread_over_nodes_and_zones_unless_overridden() -> None:
    """Default: hostname and zone, maxSkew 1, ScheduleAnyway, over the revision's pods."""
    (deployment,) = by_kind(build("iris-gateway"), "Deployment").values()
    selector = deployment["spec"]["selector"]["matchLabels"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread == [
        {
            "topologyKey": key,
            "maxSkew": 1,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    fraud = by_kind(build("fraud-canary-gateway"), "Deployment")["fraud-predictor-bbbb2222"]
    zone, host = fraud["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (zone["whenUnsatisfiable"], zone["minDomains"], host["maxSkew"]) == (
        "DoNotSchedule",
        2,
        2,
    )
    assert zone["labelSelector"] == {"matchLabels": fraud["spec"]["selector"]["matchLabels"]}
    shadow = pod_specs("reco-ab-mirror-gateway")["reco-shadow-0000cccc"]
    assert "topologySpreadConstraints" not in shadow  # [] turns spreading off


def runtime_pod(children: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec of the only Deployment."""
    (deployment,) = [c for c in children if c["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_service_account_auth_gives_only_the_runtime_a_token_to_read_the_issuer() -> None:
    """serviceAccount mode: KUBESERVE_AUTH_* env, and a projected token + cluster CA mounted
    in the runtime container only; the pod still automounts no token anywhere."""
    pod = runtime_pod(build("iris-serviceaccount-auth"))
    assert pod["automountServiceAccountToken"] is False
    (runtime,) = pod["containers"]
    env = {e["name"]: e["value"] for e in runtime["env"]}
    assert env["KUBESERVE_AUTH_MODE"] == "serviceAccount"
    assert env["KUBESERVE_AUTH_AUDIENCE"] == "iris"
    assert json.loads(env["KUBESERVE_AUTH_ALLOW"]) == ["apps/web", "batch/*"]
    assert env["KUBESERVE_AUTH_JWKS_URL"] == "https://kubernetes.default.svc/openid/v1/jwks"
    assert "KUBESERVE_AUTH_TOKEN_FILE" not in env
    mounts = {m["name"]: m for m in runtime["volumeMounts"]}
    assert mounts["issuer"]["readOnly"] is True
    assert env["KUBESERVE_AUTH_FETCH_TOKEN_FILE"].startswith(mounts["issuer"]["mountPath"])
    assert env["KUBESERVE_AUTH_CA_FILE"].startswith(mounts["issuer"]["mountPath"])
    (init,) = pod["initContainers"]
    assert "issuer" not in {m["name"] for m in init["volumeMounts"]}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "issuer"]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"path": "token", "expirationSeconds": 3600}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"


def test_oidc_auth_renders_issuer_audience_and_claims_without_a_token_volume() -> None:
    """oidc mode: the issuer, audience, allowed subjects and required claims as env; no
    Secret and no projected token (the issuer is reached with public CAs)."""
    obj, plan, predictors, config = iris_case()
    obj["spec"]["auth"] = {
        "mode": "oidc",
        "issuer": "https://login.example.com/realms/ml",
        "audience": "iris-api",
        "allow": ["alice"],
        "requiredClaims": {"groups": "ml", "email_verified": "true"},
    }
    isvc = InferenceService.model_validate(obj)
    pod = runtime_pod(build_children(isvc, plan, predictors, config))
    (runtime,) = pod["containers"]
    env = {e["name"]: e["value"] for e in runtime["env"]}
    assert env["KUBESERVE_AUTH_MODE"] == "oidc"
    assert env["KUBESERVE_AUTH_ISSUER"] == "https://login.example.com/realms/ml"
    assert json.loads(env["KUBESERVE_AUTH_REQUIRED_CLAIMS"]) == {
        "email_verified": "true",
        "groups": "ml",
    }
    assert not {"KUBESERVE_AUTH_FETCH_TOKEN_FILE", "KUBESERVE_AUTH_TOKEN_FILE"} & set(env)
    assert [v["name"] for v in pod["volumes"]] == ["model", "tmp"]
