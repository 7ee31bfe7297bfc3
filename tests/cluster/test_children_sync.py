"""A change reaches the children even when it only removes something.

Each case of the issue, as a user meets it: a field, an annotation or an operator
setting disappears from what the operator wants, and must disappear from the live child
(server-side apply removes what our field manager stops setting — if the operator
applies at all). Then a property: for random pairs of valid specs A -> B, once the
operator settles, the children of A-edited-to-B equal those of B created afresh.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from isvc_api import create, custom, isvc, patch, predictor, until
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.state import CHILD_KINDS
from kubeserve.controller.watching import is_ready, wait_isvc
from kubeserve_runtime.contract import ANNOTATION_APPLIED_HASH, GROUP, LABEL_ISVC, PLURAL, VERSION

GATEWAY = "gateway.networking.k8s.io"
NGINX = "nginx.ingress.kubernetes.io"


def current(obj: dict[str, Any]) -> bool:
    """The operator has acted on the object's latest generation."""
    status = obj.get("status") or {}
    return bool(status.get("observedGeneration") == obj["metadata"]["generation"])


def http_route(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The HTTPRoute of an InferenceService."""
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GATEWAY, "v1", namespace, "httproutes", name
    )
    return obj


def ingress_annotations(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """metadata.annotations of one Ingress ({} when it has none or does not exist)."""
    found = (
        client.NetworkingV1Api(api)
        .list_namespaced_ingress(namespace, field_selector=f"metadata.name={name}")
        .items
    )
    return dict(found[0].metadata.annotations or {}) if found else {}


# --------------------------------------------------------------------------- the cases


def variant_b(weight: int, header: bool) -> dict[str, Any]:
    """Variant b with `weight` and, optionally, the header match x-model-variant: b."""
    variant: dict[str, Any] = {"name": "b", "weight": weight, "predictor": predictor("s3://m/b")}
    if header:
        variant["match"] = {"headers": {"x-model-variant": "b"}}
    return variant


def create_mirrored(
    api: client.ApiClient, namespace: str, variant: dict[str, Any], mirror_percent: int
) -> None:
    """Create iris with one variant that also receives mirrored traffic; wait for Ready."""
    spec = {
        "predictor": predictor("s3://m/a"),
        "variants": [variant],
        "mirror": {"variant": variant["name"], "percent": mirror_percent},
    }
    create(api, namespace, isvc("iris", spec))
    wait_isvc(api, namespace, "iris", is_ready, "Ready")


def test_gateway_removing_the_mirror_and_the_section_name(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Removing spec.mirror removes the RequestMirror filter; an operator restarted
    without its gateway sectionName setting removes the parentRef's sectionName."""
    first = operator_factory(env={"KUBESERVE_OPERATOR_GATEWAY_SECTION_NAME": "https"})
    create_mirrored(api_client, namespace, variant_b(20, header=False), mirror_percent=10)
    route = http_route(api_client, namespace, "iris")
    assert route["spec"]["rules"][-1]["filters"][0]["type"] == "RequestMirror"
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https"

    patch(api_client, namespace, "iris", {"spec": {"mirror": None}})
    until(
        lambda: "filters" not in http_route(api_client, namespace, "iris")["spec"]["rules"][-1],
        "the RequestMirror filter removed",
    )

    first.stop()
    operator_factory()
    until(
        lambda: (
            "sectionName" not in http_route(api_client, namespace, "iris")["spec"]["parentRefs"][0]
        ),
        "the sectionName the operator no longer sets removed",
    )


def replace_variant(
    api: client.ApiClient, namespace: str, variant: dict[str, Any], gone: str
) -> None:
    """Make `variant` the only one; wait until the canary Ingress lost the annotations
    `gone` and `gone`-*, and check it kept the other kind (weight or header)."""
    patch(api, namespace, "iris", {"spec": {"variants": [variant]}})
    until(
        lambda: (
            not any(
                k.startswith(f"{NGINX}/{gone}")
                for k in ingress_annotations(api, namespace, "iris-canary")
            )
        ),
        f"{gone} removed",
    )
    kept = "canary-by-header" if gone == "canary-weight" else "canary-weight"
    assert f"{NGINX}/{kept}" in ingress_annotations(api, namespace, "iris-canary")


def test_nginx_removing_mirror_weight_and_header_match(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """ingress-nginx: mirror-target, canary-weight and canary-by-header each go away with
    the spec field that made them (weight 20 -> 0 must stop sending 20% to b)."""
    operator_factory(env={"KUBESERVE_OPERATOR_INGRESS_MODE": "nginx"})
    create_mirrored(api_client, namespace, variant_b(20, header=True), mirror_percent=100)
    assert f"{NGINX}/mirror-target" in ingress_annotations(api_client, namespace, "iris")
    canary = ingress_annotations(api_client, namespace, "iris-canary")
    assert canary[f"{NGINX}/canary-weight"] == "20"
    assert canary[f"{NGINX}/canary-by-header"] == "x-model-variant"

    patch(api_client, namespace, "iris", {"spec": {"mirror": None}})
    until(
        lambda: f"{NGINX}/mirror-target" not in ingress_annotations(api_client, namespace, "iris"),
        "mirror-target removed",
    )

    # weight 20 -> 0: no weighted traffic may go to b any more
    replace_variant(api_client, namespace, variant_b(0, header=True), "canary-weight")
    replace_variant(api_client, namespace, variant_b(20, header=False), "canary-by-header")


# --------------------------------------------------------------------------- the property

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def normalized(obj: dict[str, Any], namespace: str, autoscaled: set[str]) -> Any:
    """A child without what the API server assigns (ids, versions, cluster IPs, the
    Deployment controller's revision counter, status) or derives from it (our applied
    hash), and with the namespace as "NS";
    an autoscaled Deployment's replicas belong to the HPA and are left out."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for key in (*SERVER_SET, "namespace"):
        meta.pop(key, None)
    for ref in meta.get("ownerReferences") or []:
        ref.pop("uid", None)
    annotations = meta.get("annotations") or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    annotations.pop(
        ANNOTATION_APPLIED_HASH, None
    )  # hashes the uid and namespace too: differs by design
    obj.pop("status", None)
    spec = obj.get("spec") or {}
    if obj["kind"] == "Service":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if obj["kind"] == "Deployment" and meta["name"] in autoscaled:
        spec.pop("replicas", None)
    return json.loads(json.dumps(obj).replace(namespace, "NS"))


def children(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """Every child of an InferenceService, normalized, keyed by "Kind/name"."""
    dynamic = DynamicClient(api)
    found: list[dict[str, Any]] = []
    for child in CHILD_KINDS:
        resource = dynamic.resources.get(api_version=child.api_version, kind=child.kind)
        items = resource.get(namespace=namespace, label_selector=f"{LABEL_ISVC}={name}").items
        found += [item.to_dict() for item in items]
    autoscaled = {
        o["spec"]["scaleTargetRef"]["name"] for o in found if o["kind"] == "HorizontalPodAutoscaler"
    }
    return {
        f"{o['kind']}/{o['metadata']['name']}": normalized(o, namespace, autoscaled) for o in found
    }


SIZES = ((1, 1), (2, 2), (1, 3))
"""(min, max) replicas: fixed size, fixed with a PDB, autoscaled with an HPA."""


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid InferenceService spec: sizes, batcher, variants (weights, header matches),
    mirror and auth vary; storage URIs do not, so revisions change only with sizes."""
    low, high = draw(st.sampled_from(SIZES))
    spec: dict[str, Any] = {"predictor": predictor("s3://m/a", min_replicas=low, max_replicas=high)}
    if draw(st.booleans()):
        spec["predictor"]["batcher"] = {"maxBatchSize": 8, "maxLatencyMs": 5}
    names = draw(st.lists(st.sampled_from(["b", "c"]), unique=True, max_size=2))
    budget = 100
    variants = []
    for variant in names:
        weight = draw(st.integers(0, min(budget, 50)))
        budget -= weight
        entry: dict[str, Any] = {
            "name": variant,
            "weight": weight,
            "predictor": predictor(f"s3://m/{variant}"),
        }
        if draw(st.booleans()):
            entry["match"] = {"headers": {"x-model-variant": variant}}
        variants.append(entry)
    if variants:
        spec["variants"] = variants
        if draw(st.booleans()):
            target = draw(st.sampled_from(names))
            spec["mirror"] = {"variant": target, "percent": draw(st.sampled_from([10, 100]))}
    if draw(st.booleans()):
        spec["auth"] = {"secretRef": {"name": "iris-tokens"}}
    return spec


REMOVABLE = ("mirror", "batcher", "auth", "match", "weight")
"""What an edit may take away from A: spec.mirror, the batcher, auth, the variants'
header matches, their weights (set to 0)."""


def without(spec: dict[str, Any], removed: set[str]) -> dict[str, Any]:
    """`spec` with the `removed` parts of :data:`REMOVABLE` taken away."""
    spec = copy.deepcopy(spec)
    if "mirror" in removed:
        spec.pop("mirror", None)
    if "batcher" in removed:
        spec["predictor"].pop("batcher", None)
    if "auth" in removed:
        spec.pop("auth", None)
    for variant in spec.get("variants") or ():
        if "match" in removed:
            variant.pop("match", None)
        if "weight" in removed:
            variant["weight"] = 0
    return spec


@st.composite
def edits(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(A, B): B is another random spec, or A with some parts removed — the edits that
    change nothing else, which a "is everything desired there?" test misses."""
    before = draw(specs())
    if draw(st.booleans()):
        return before, draw(specs())
    return before, without(before, draw(st.sets(st.sampled_from(REMOVABLE), min_size=1)))


MIRRORED = {
    "predictor": {
        **predictor("s3://m/a", min_replicas=1, max_replicas=3),
        "batcher": {"maxBatchSize": 8, "maxLatencyMs": 5},
    },
    "variants": [variant_b(20, header=True)],
    "mirror": {"variant": "b", "percent": 10},
    "auth": {"secretRef": {"name": "iris-tokens"}},
}


@pytest.fixture
def second_namespace(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """Another fresh namespace, where B is created from scratch."""
    from kubeserve.devcluster import session

    name = session.create_namespace(api_client, f"{namespace}-fresh"[:63])
    try:
        yield name
    finally:
        session.delete_namespace(api_client, name)


@pytest.fixture
def both_operator(
    kubeconfig: Path, namespace: str, second_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """One operator watching both namespaces."""
    proc = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        namespaces=[namespace, second_namespace],
        env={"KUBESERVE_OPERATOR_INGRESS_MODE": "gateway"},
    )
    with proc:
        yield proc
        print(f"--- operator log\n{proc.log()[-4000:]}")


def difference(edited: dict[str, Any], fresh: dict[str, Any]) -> str:
    """A unified diff of the children that differ (edited A -> B vs. fresh B)."""
    lines: list[str] = []
    for key in sorted(set(edited) | set(fresh)):
        if edited.get(key) != fresh.get(key):
            lines += difflib.unified_diff(
                json.dumps(edited.get(key), indent=1, sort_keys=True).splitlines(),
                json.dumps(fresh.get(key), indent=1, sort_keys=True).splitlines(),
                f"{key} (A edited to B)",
                f"{key} (B created)",
                lineterm="",
            )
    return "\n".join(lines)


def settle(check: Callable[[], bool], timeout: float = 90.0) -> None:
    """Poll `check` until it holds or the (failure-guard) deadline passes."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.5)


EXAMPLES = itertools.count()
"""Each example gets its own InferenceService name."""


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(
    max_examples=8,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(edit=(MIRRORED, without(MIRRORED, {"mirror"})))
@example(edit=(MIRRORED, without(MIRRORED, {"match", "weight"})))
@example(edit=(MIRRORED, {"predictor": predictor("s3://m/a")}))
@given(edit=edits())
def test_children_after_an_edit_equal_a_fresh_render(
    api_client: client.ApiClient,
    namespace: str,
    second_namespace: str,
    both_operator: OperatorProcess,
    edit: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """A -> B leaves no field of A behind: the settled children equal those of B created
    in a fresh namespace (same name), apart from what the API server assigns."""
    before, after = edit
    name = f"p{next(EXAMPLES)}"
    create(api_client, namespace, isvc(name, before))
    wait_isvc(api_client, namespace, name, current, "A applied")
    replace_spec = [{"op": "replace", "path": "/spec", "value": after}]  # as GitOps does
    custom(api_client).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        replace_spec,
        _content_type="application/json-patch+json",
    )
    create(api_client, second_namespace, isvc(name, after))

    def same() -> bool:
        return children(api_client, namespace, name) == children(api_client, second_namespace, name)

    settle(same)
    try:
        edited = children(api_client, namespace, name)
        fresh = children(api_client, second_namespace, name)
        assert edited == fresh, difference(edited, fresh)
    finally:
        for ns in (namespace, second_namespace):
            custom(api_client).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
