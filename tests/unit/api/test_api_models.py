"""The v1alpha1 models accept what the API accepts and refuse the rest with clear words."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve.api.v1alpha1 import (
    InferenceService,
    InferenceServiceStatus,
    canonical_size,
    size_bytes,
)

SetPath = Callable[[dict[str, Any], str, Any], dict[str, Any]]
"""The `set_path` fixture (tests/conftest.py): a copy with one dotted path set."""


def minimal() -> dict[str, Any]:
    """Return the smallest valid InferenceService."""
    return {
        "apiVersion": "serving.kubeserve.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris/v1"}
            }
        },
    }


def refusal(obj: dict[str, Any]) -> str:
    """Return the validation error text for an object that must be refused."""
    with pytest.raises(ValidationError) as caught:
        InferenceService.model_validate(obj)
    return str(caught.value)


def test_minimal_gets_defaults_without_touching_the_input() -> None:
    """Defaults are applied in the model; the input dict is not mutated."""
    obj = minimal()
    before = copy.deepcopy(obj)
    isvc = InferenceService.model_validate(obj)
    assert obj == before
    predictor = isvc.spec.predictor
    assert predictor.min_replicas == 1
    assert predictor.effective_max_replicas == 1
    assert predictor.scale_metric == "cpu"
    assert predictor.effective_scale_target == 80
    assert predictor.model is not None
    assert predictor.model.protocol_version == "v2"
    assert predictor.model.storage_size_limit == "10Gi"
    assert predictor.shutdown_delay_seconds == 5
    assert predictor.topology_spread_constraints is None  # the builders spread by default


def test_full_example_round_trips_in_camel_case(full_isvc: dict[str, Any]) -> None:
    """Every field parses and serialises back under its camelCase name."""
    obj = full_isvc
    isvc = InferenceService.model_validate(obj)
    assert isvc.spec.rollout is not None
    assert isvc.spec.rollout.steps == [10, 25, 50]
    assert isvc.predictor_for("b").containers is not None
    wire = isvc.to_dict()
    assert wire["spec"]["predictor"]["model"]["storageSecretRef"] == {"name": "s3-creds"}
    assert wire["spec"]["predictor"]["inputSchema"]["inputs"][0]["allowNaN"] is False
    assert wire["spec"]["mirror"] == {"variant": "shadow", "percent": 10}
    assert InferenceService.model_validate(wire) == isvc
    with pytest.raises(KeyError):
        isvc.predictor_for("nope")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.predictor.minReplicas", 6, "minReplicas must be less than or equal to maxReplicas"),
        ("spec.predictor.model.modelFormat.name", "tensorflow", "Input should be 'onnx'"),
        ("spec.rollout", {"canaryTrafficPercent": 150}, "less than or equal to 100"),
        ("spec.predictor.surprise", 1, "Extra inputs are not permitted"),
        ("spec.predictor.min_replicas", 1, "Extra inputs are not permitted"),
        ("spec.variants.1.name", "b", "variant names must be unique"),
        ("spec.variants.1.name", "predictor", "'predictor' is reserved"),
        ("spec.variants.1.weight", 81, "weights of all variants must add up to at most 100"),
        ("spec.mirror.variant", "c", "mirror.variant must name one of spec.variants"),
        ("spec.feedback", None, "maxQualityDrop read ground-truth feedback: set spec.feedback"),
        ("spec.rollout.steps", [10, 50, 50], "strictly increasing"),
        ("spec.rollout.steps", [10, 100], "less than or equal to 99"),
        ("spec.rollout.canaryTrafficPercent", 10, "not both"),
        ("spec.rollout.interval", "soon", "String should match pattern"),
        ("spec.predictor.containers", [{"image": "x"}], "set exactly one of model"),
        ("spec.variants.0.predictor", {}, "set exactly one of model"),
        ("spec.predictor.model.storageUri", "ftp://x", "String should match pattern"),
        ("spec.predictor.model.resources.requests.cpu", "lots", "String should match pattern"),
        ("spec.predictor.model.env.0.valueFrom", {"fieldRef": {"fieldPath": "x"}}, "not both"),
        (
            "spec.predictor.inputSchema.inputs.0.min",
            11,
            "input min must be less than or equal to max",
        ),
        ("metadata.name", "x" * 39, "at most 38 characters"),
        ("metadata.name", "Iris", "String should match pattern"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_message(
    path: str, value: Any, expected: str, full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """Each broken rule is refused and the message says which rule."""
    assert expected in refusal(set_path(full_isvc, path, value))


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
        ("spec.predictor.model.storageUri", "pvc://-models/iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc://models./iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", "pvc://a b/iris", PVC_CLAIM),
        ("spec.predictor.model.storageUri", f"pvc://{'a' * 254}/iris", PVC_CLAIM),
        ("spec.predictor.model.storageSizeLimit", "0", "String should match pattern"),
        ("spec.predictor.model.storageSizeLimit", "1.5Gi", "String should match pattern"),
        ("spec.predictor.model.storageSizeLimit", "10GB", "String should match pattern"),
        ("spec.predictor.shutdownDelaySeconds", 301, "less than or equal to 300"),
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
        (
            "spec.predictor.topologySpreadConstraints",
            [{"topologyKey": "no spaces"}],
            "String should match pattern",
        ),
    ],
)
def test_header_names_claims_sizes_and_spread_are_checked(
    path: str, value: Any, expected: str, full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """Header names, pvc:// claims, sizes and spread constraints the cluster would refuse."""
    assert expected in refusal(set_path(full_isvc, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.variants.0.match.headers", {"X-Model_Variant.v2": "b", "x-tenant": "acme"}),
        ("spec.variants.0.match.headers", {"!#$%&'*+-.^_`|~": "b"}),
        ("spec.variants.0.match.headers", {"x" * 256: "b"}),
        ("spec.predictor.model.storageUri", "pvc://models"),
        ("spec.predictor.model.storageUri", "pvc://team.models-1/iris/v2"),
        ("spec.predictor.model.storageUri", f"pvc://{'a' * 253}/iris"),
        ("spec.predictor.model.storageSizeLimit", "999999Ti"),
        (
            "spec.predictor.topologySpreadConstraints",
            [
                {"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 2},
                {"topologyKey": "zone"},
            ],
        ),
    ],
)
def test_valid_header_names_claims_sizes_and_spread_are_accepted(
    path: str, value: Any, full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """The rules refuse only what Kubernetes and Gateway API refuse."""
    InferenceService.model_validate(set_path(full_isvc, path, value))


def test_sizes_convert_to_bytes_and_to_the_api_servers_spelling() -> None:
    """storageSizeLimit: bytes for the download, canonical text for the emptyDir."""
    assert size_bytes("10Gi") == 10 * 1024**3
    assert size_bytes("3k") == 3000
    assert size_bytes("512") == 512
    assert [canonical_size(s) for s in ("1024Mi", "1536Mi", "2000k", "1500", "10Gi")] == [
        "1Gi",
        "1536Mi",
        "2M",
        "1500",
        "10Gi",
    ]
    with pytest.raises(ValueError, match="not a size"):
        size_bytes("1.5Gi")


def test_env_value_from_needs_exactly_one_source(
    full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """valueFrom with two sources is refused."""
    obj = set_path(
        full_isvc,
        "spec.predictor.model.env.1.valueFrom.fieldRef",
        {"fieldPath": "metadata.name"},
    )
    assert "exactly one of secretKeyRef, configMapKeyRef, fieldRef" in refusal(obj)


def test_quantities_accept_integers_and_strings(set_path: SetPath) -> None:
    """Resources take Kubernetes quantities: 2, '500m', '1.5Gi'."""
    obj = set_path(
        minimal(), "spec.predictor.model.resources", {"requests": {"cpu": 2, "memory": "1.5Gi"}}
    )
    isvc = InferenceService.model_validate(obj)
    assert isvc.to_dict()["spec"]["predictor"]["model"]["resources"] == {
        "requests": {"cpu": 2, "memory": "1.5Gi"}
    }


def test_status_parses_what_the_operator_writes() -> None:
    """A typical status (conditions, revisions, rollout, variants) validates."""
    status = InferenceServiceStatus.model_validate(
        {
            "observedGeneration": 3,
            "url": "http://iris.ml.example.com",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Available",
                    "message": "all revisions ready",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
            ],
            "revisions": {
                "stable": {
                    "name": "iris-predictor-aaaa1111",
                    "hash": "aaaa1111",
                    "trafficPercent": 90,
                },
                "canary": {
                    "name": "iris-predictor-bbbb2222",
                    "hash": "bbbb2222",
                    "trafficPercent": 10,
                },
                "history": [
                    {"name": "iris-predictor-cccc3333", "hash": "cccc3333", "outcome": "Superseded"}
                ],
            },
            "rollout": {"revision": "bbbb2222", "step": 0, "failedChecks": 0},
            "variants": [
                {"name": "predictor", "revision": "aaaa1111", "weight": 100, "replicas": 1}
            ],
            "replicas": 2,
            "readyReplicas": 2,
        }
    )
    assert status.revisions is not None
    assert status.revisions.canary is not None
    assert status.revisions.canary.traffic_percent == 10
    with pytest.raises(ValidationError, match="Input should be 'True', 'False' or 'Unknown'"):
        InferenceServiceStatus.model_validate({"conditions": [{"type": "Ready", "status": "yes"}]})


SA = {"mode": "serviceAccount", "audience": "iris", "allow": ["apps/web"]}
OIDC = {"mode": "oidc", "issuer": "https://login.example.com", "audience": "iris"}


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({}, "auth mode tokens needs secretRef"),
        ({"mode": "tokens", "secretRef": {"name": "t"}, "audience": "x"}, "are for auth modes"),
        ({**SA, "secretRef": {"name": "t"}}, "secretRef is for auth mode tokens only"),
        ({"mode": "serviceAccount", "allow": ["apps/web"]}, "need audience"),
        ({"mode": "serviceAccount", "audience": "iris"}, "serviceAccount needs allow"),
        ({**SA, "allow": []}, "serviceAccount needs allow"),
        ({**SA, "allow": ["web"]}, "each allow entry is namespace/name or namespace/*"),
        ({**SA, "allow": ["apps/Web"]}, "each allow entry is namespace/name or namespace/*"),
        ({**SA, "issuer": "https://x.example.com"}, "only oidc takes one"),
        ({"mode": "oidc", "audience": "iris"}, "auth mode oidc needs issuer"),
        ({**OIDC, "issuer": "http://login.example.com"}, "String should match pattern"),
        ({**OIDC, "mode": "ldap"}, "Input should be 'tokens', 'serviceAccount' or 'oidc'"),
    ],
)
def test_auth_blocks_missing_what_their_mode_needs_are_refused(
    auth: dict[str, Any], expected: str
) -> None:
    """Each auth mode's requirements, refused with a message naming the missing part."""
    obj = minimal()
    obj["spec"]["auth"] = auth
    assert expected in refusal(obj)


@pytest.mark.parametrize(
    "auth",
    [
        {"secretRef": {"name": "tokens"}},
        SA,
        {**SA, "allow": ["apps/web", "batch/*"], "requiredClaims": {"x": "y"}},
        OIDC,
        {**OIDC, "allow": ["alice"], "requiredClaims": {"groups": "ml"}},
    ],
)
def test_complete_auth_blocks_are_accepted(auth: dict[str, Any]) -> None:
    """Every mode with what it needs validates; unset mode means tokens."""
    obj = minimal()
    obj["spec"]["auth"] = auth
    parsed = InferenceService.model_validate(obj).spec.auth
    assert parsed is not None
    assert parsed.mode == auth.get("mode", "tokens")


def test_jwt_auth_needs_bundled_runtime_predictors(full_isvc: dict[str, Any]) -> None:
    """A custom container could not enforce serviceAccount or oidc tokens: refused."""
    full_isvc["spec"]["auth"] = OIDC
    assert "every predictor needs model, not containers" in refusal(full_isvc)
