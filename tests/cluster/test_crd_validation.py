"""The generated CRD on a real API server: invalid specs refused, builder output accepted.

The session fixture installs crds/ (our CRD) and the Gateway API CRDs; these tests create
objects exactly as kubectl would (strict field validation) and read what the API server
says, so the CEL rules, their messages and the builders' objects are checked for real.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from kubeserve.controller.drift import contains
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.cluster

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"

SetPath = Callable[[dict[str, Any], str, Any], dict[str, Any]]
"""The `set_path` fixture (tests/conftest.py): a copy with one dotted path set."""
LOGGER = "spec.predictor.logger"


def create(api: client.ApiClient, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create an InferenceService with strict field validation, as kubectl does."""
    body = copy.deepcopy(obj)
    body["metadata"].pop("namespace", None)
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )
    return created


def refused(api: client.ApiClient, namespace: str, obj: dict[str, Any]) -> str:
    """Create an object that must be refused; return the API server's message."""
    with pytest.raises(ApiException) as caught:
        create(api, namespace, obj)
    assert caught.value.status in (400, 422), caught.value.body
    return str(json.loads(caught.value.body)["message"])


def test_valid_inferenceservice_is_stored_as_written(
    api_client: client.ApiClient, namespace: str, full_isvc: dict[str, Any]
) -> None:
    """A spec using every field is accepted and stored without added defaults."""
    obj = full_isvc
    stored = create(api_client, namespace, obj)
    assert stored["spec"] == obj["spec"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.predictor.minReplicas", 6, "minReplicas must be less than or equal to maxReplicas"),
        ("spec.predictor.model.modelFormat.name", "tensorflow", 'Unsupported value: "tensorflow"'),
        ("spec.rollout", {"canaryTrafficPercent": 150}, "should be less than or equal to 100"),
        ("spec.predictor.surprise", 1, 'unknown field "spec.predictor.surprise"'),
        ("spec.variants.1.name", "b", "variant names must be unique"),
        ("spec.variants.1.weight", 81, "the weights of all variants must add up to at most 100"),
        ("spec.mirror.variant", "c", "mirror.variant must name one of spec.variants"),
        ("spec.feedback", None, "maxQualityDrop read ground-truth feedback: set spec.feedback"),
        ("spec.rollout.steps", [10, 50, 50], "rollout.steps must be strictly increasing"),
        ("spec.rollout.steps", [10, 100], "should be less than or equal to 99"),
        ("spec.predictor.containers", [{"image": "x"}], "set exactly one of model"),
        ("spec.predictor.model.storageUri", "ftp://x", "spec.predictor.model.storageUri"),
        ("metadata.name", "x" * 39, "metadata.name must be a DNS label of at most 38"),
        (f"{LOGGER}.sampleRate", 1.5, "should be less than or equal to 1"),
        (f"{LOGGER}.sinks", [], "logger.sinks needs at least one sink: http, s3 or stdout"),
        (LOGGER, {"mode": "all"}, "logger.sinks needs at least one sink"),
        (f"{LOGGER}.sinks.2", {}, "each logger sink sets exactly one of http, s3 or stdout"),
        (
            f"{LOGGER}.sinks.2",
            {"stdout": {}, "http": {"url": "http://x"}},
            "each logger sink sets exactly one of http, s3 or stdout",
        ),
        (f"{LOGGER}.sinks.1.s3.serverSideEncryption", "AES256", "kmsKeyId needs"),
        ("spec.variants.0.predictor.logger", {"sinks": [{"stdout": {}}]}, "logger needs model"),
        ("spec.experiment.metric", "accuracy", "is set exactly when experiment.metric is custom"),
        (
            "spec.experiment",
            {"metric": "custom", "custom": {"numerator": "a", "denominator": "b"}},
            "experiment.direction (higher or lower) is required for a custom metric",
        ),
        ("spec.experiment.minDetectableEffect", 1.5, "must be below 1, e.g. 0.02"),
        ("spec.experiment.alpha", 0.5, "should be less than or equal to 0.2"),
        ("spec.variants.0.weight", 0, "experiment needs a variant with weight > 0"),
    ],
)
def test_invalid_specs_are_refused_with_readable_messages(
    api_client: client.ApiClient,
    namespace: str,
    path: str,
    value: Any,
    expected: str,
    full_isvc: dict[str, Any],
    set_path: SetPath,
) -> None:
    """The API server refuses each broken rule and says which."""
    assert expected in refused(api_client, namespace, set_path(full_isvc, path, value))


HEADER_NAMES = "match.headers names must be HTTP header names"
PVC_CLAIM = "a pvc:// storageUri is pvc://<claim>/<path>"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.variants.0.match.headers", {"": "b"}, HEADER_NAMES),
        ("spec.variants.0.match.headers", {"x y": "b"}, HEADER_NAMES),
        ("spec.variants.0.match.headers", {"x-a\r\nx-b": "b"}, HEADER_NAMES),
        ("spec.variants.0.match.headers", {"x:y": "b"}, HEADER_NAMES),
        ("spec.variants.0.match.headers", {"x" * 257: "b"}, HEADER_NAMES),
        ("spec.variants.0.match.headers", {"X-Variant": "b", "x-variant": "c"}, "ignoring case"),
        ("spec.predictor.model.storageUri", "pvc://Models/iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc://models_v1/iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc:///iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc://models./iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc://a b/iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", f"pvc://{'a' * 254}/iris", PVC_CLAIM),
        ("spec.predictor.model.storageSizeLimit", "1.5Gi", "spec.predictor.model.storageSizeLimit"),
        ("spec.predictor.shutdownDelaySeconds", 301, "should be less than or equal to 300"),
        (
            "spec.predictor.topologySpreadConstraints",
            [{"topologyKey": "topology.kubernetes.io/zone", "minDomains": 2}],
            "minDomains needs whenUnsatisfiable: DoNotSchedule",
        ),
        (
            "spec.predictor.topologySpreadConstraints",
            [{"topologyKey": "zone"}, {"topologyKey": "zone", "maxSkew": 2}],
            "may name a topologyKey once per whenUnsatisfiable",
        ),
    ],
)
def test_header_names_claims_sizes_and_spread_are_refused(
    api_client: client.ApiClient,
    namespace: str,
    path: str,
    value: Any,
    expected: str,
    full_isvc: dict[str, Any],
    set_path: SetPath,
) -> None:
    """What would break the route, the pod's volume or its scheduling is refused up front."""
    assert expected in refused(api_client, namespace, set_path(full_isvc, path, value))


def test_valid_header_names_and_claims_are_accepted(
    api_client: client.ApiClient, namespace: str, full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """Every token character, a 256-character name and a dotted 253-character claim pass."""
    obj = set_path(
        full_isvc, "spec.variants.0.match.headers", {"!#$%&'*+-.^_`|~Az09": "b", "x" * 256: "c"}
    )
    obj = set_path(obj, "spec.predictor.model.storageUri", f"pvc://team.{'a' * 248}/iris")
    create(api_client, namespace, obj)


def _apply(api: client.ApiClient, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply one child (field manager kubeserve) and return the stored object."""
    resources = dynamic.DynamicClient(api).resources
    resource = resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    body = copy.deepcopy(obj)
    body["metadata"]["namespace"] = namespace
    body["metadata"].pop("ownerReferences", None)  # the golden parent does not exist here
    stored = resource.server_side_apply(
        body=body,
        name=obj["metadata"]["name"],
        namespace=namespace,
        field_manager="kubeserve",
        force_conflicts=True,
    )
    result: dict[str, Any] = stored.to_dict()
    return result


@pytest.mark.parametrize(
    "case",
    [
        "iris-gateway",
        "iris-serviceaccount-auth",
        "fraud-canary-gateway",
        "reco-ab-mirror-gateway",
        "fraud-canary-nginx",
    ],
)
def test_builder_output_is_accepted_and_routes_do_not_drift(
    api_client: client.ApiClient, namespace: str, case: str
) -> None:
    """Every golden child is accepted and stored as built: the operator sees no drift.

    HTTPRoutes are stored exactly as built; other kinds gain server defaults only, and
    every built field (sizes in canonical spelling included) reads back the same.
    """
    children = list(yaml.safe_load_all((GOLDEN / f"{case}.yaml").read_text()))
    for child in children:
        stored = _apply(api_client, namespace, child)
        if child["kind"] == "HTTPRoute":
            assert stored["spec"] == child["spec"]
        assert contains(stored["spec"], child["spec"]), child["metadata"]["name"]


def test_predictor_pods_pass_pod_security_restricted(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Pods from the builders are admitted where Pod Security "restricted" is enforced."""
    core = client.CoreV1Api(api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "fraud-model"}})
    for case in ("fraud-canary-gateway", "reco-ab-mirror-gateway", "iris-serviceaccount-auth"):
        for child in yaml.safe_load_all((GOLDEN / f"{case}.yaml").read_text()):
            if child["kind"] != "Deployment":
                continue
            template = child["spec"]["template"]
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": child["metadata"]["name"],
                    "labels": template["metadata"]["labels"],
                },
                "spec": template["spec"],
            }
            core.create_namespaced_pod(namespace, pod, dry_run="All")


SA_AUTH = {"mode": "serviceAccount", "audience": "iris", "allow": ["apps/web"]}


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({}, "auth mode tokens needs secretRef"),
        ({**SA_AUTH, "secretRef": {"name": "t"}}, "secretRef is for auth mode tokens only"),
        ({"secretRef": {"name": "t"}, "allow": ["a/b"]}, "are for auth modes serviceAccount"),
        ({"mode": "serviceAccount", "allow": ["apps/web"]}, "need audience"),
        ({"mode": "serviceAccount", "audience": "iris"}, "auth mode serviceAccount needs allow"),
        ({**SA_AUTH, "allow": ["web"]}, "each allow entry is namespace/name or namespace/*"),
        ({"mode": "oidc", "audience": "iris"}, "auth mode oidc needs issuer"),
        ({**SA_AUTH, "issuer": "https://x.example.com"}, "only oidc takes one"),
    ],
)
def test_incomplete_auth_blocks_are_refused_by_the_api_server(
    api_client: client.ApiClient, namespace: str, auth: dict[str, Any], expected: str
) -> None:
    """The CEL rules of spec.auth: each mode's missing part is named by the API server."""
    obj = yaml.safe_load((GOLDEN / "inputs" / "iris.yaml").read_text())
    obj["spec"]["auth"] = auth
    assert expected in refused(api_client, namespace, obj)


def test_jwt_auth_is_accepted_for_models_and_refused_for_custom_containers(
    api_client: client.ApiClient, namespace: str, full_isvc: dict[str, Any]
) -> None:
    """serviceAccount and oidc blocks are stored as written for a model predictor; a
    custom-container variant cannot enforce them, so the API server refuses it."""
    for name, auth in (
        ("sa", {**SA_AUTH, "allow": ["apps/web", "batch/*"]}),
        ("oidc", {"mode": "oidc", "issuer": "https://login.example.com", "audience": "x"}),
    ):
        obj = yaml.safe_load((GOLDEN / "inputs" / "iris.yaml").read_text())
        obj["metadata"]["name"] = f"iris-{name}"
        obj["spec"]["auth"] = auth
        assert create(api_client, namespace, obj)["spec"]["auth"] == auth
    full_isvc["spec"]["auth"] = SA_AUTH
    assert "every predictor needs model, not containers" in refused(
        api_client, namespace, full_isvc
    )
