"""What the real-node example tests share: the operator installed by helm, the examples' models
in the node's S3 store, and clients that ask the pods for predictions.

Limits first: one operator release per cluster (the chart's ClusterRole and the
``kubeserve`` Lease are cluster-wide names); every wait is on a condition with a generous
timeout, because pods on the shared 2-core machine take 10-20 s to become Ready and
twice that under load. Nothing here asserts a timing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import yaml
from kubernetes import client
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kubeserve.chart import helm
from kubeserve.devcluster import build, session
from kubeserve.devcluster.gateway import GATEWAY_NAMESPACE
from kubeserve.devcluster.session import RealNodeSession
from kubeserve.images import catalog, containerd

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
RELEASE_NAMESPACE = "kubeserve-system"
OPERATOR_READY_TIMEOUT = 240.0
ISVC_READY_TIMEOUT = 300.0
SECRET = "model-store"
"""The Secret every test isvc's storageSecretRef names (the store's endpoint and keys)."""
HTTP_PORT = 8080
GRPC_PORT = 8081

T = TypeVar("T")


class NotYet(Exception):
    """Raised while a condition does not hold yet."""


def eventually(check: Callable[[], T], timeout: float, every: float = 1.0) -> T:
    """Return ``check()`` once it stops raising NotYet; re-raise its last NotYet at ``timeout``."""
    return Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry=retry_if_exception_type(NotYet),
        reraise=True,
    )(check)


def ensure_image(real: RealNodeSession, name: str) -> str:
    """Build image ``name`` unless cached, import it when this call built it; return its name.

    The node imports every archive that exists when it starts; an archive built later
    (first run on a machine, or a code change since) is imported here.
    """
    built = catalog.build_image(name, log=print)
    if not built.cached:
        containerd.import_image(real.containerd_socket, built.path)
    return built.reference


@contextmanager
def namespace(real: RealNodeSession, test_name: str) -> Iterator[str]:
    """Yield a fresh namespace for one test; delete it afterwards."""
    api = real.api_client()
    try:
        name = session.create_namespace(api, session.namespace_name(test_name))
        yield name
        session.delete_namespace(api, name)
    finally:
        api.close()


def pod_report(core: client.CoreV1Api, namespace: str, selector: str, lines: int = 30) -> str:
    """Say what the selected pods are doing: phase, container states, the last log lines."""
    report: list[str] = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        report.append(f"pod {pod.metadata.name}: {pod.status.phase} {pod.status.conditions}")
        for status in pod.status.container_statuses or []:
            report.append(f"  {status.name}: {status.state}")
            try:
                log = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=status.name, tail_lines=lines
                )
            except client.ApiException as exc:
                log = f"(no log: {exc.reason})"
            report.append("  " + log.replace("\n", "\n  "))
    return "\n".join(report) or f"no pod matches {selector} in {namespace}"


def ready_pods(core: client.CoreV1Api, namespace: str, selector: str) -> list[client.V1Pod]:
    """Return the selected pods once at least one exists and all are Running and Ready."""
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    ready = [
        pod
        for pod in pods
        if pod.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    if not pods or len(ready) != len(pods):
        raise NotYet(pod_report(core, namespace, selector))
    return ready


def serving(base: str) -> None:
    """Raise NotYet until ``base`` answers /v2/health/ready with 200.

    An InferenceService is Ready when its pods are; its Service carries requests once
    kube-proxy has written the endpoints into the node's rules, a moment later.
    """
    try:
        answer = httpx.get(f"{base}/v2/health/ready", timeout=5)
    except httpx.TransportError as exc:
        raise NotYet(f"{base}: {exc!r}") from exc
    if answer.status_code != 200:
        raise NotYet(f"{base}: HTTP {answer.status_code} {answer.text}")


@dataclass(frozen=True)
class OperatorRelease:
    """The operator as ``helm install`` of the repository's chart runs it."""

    release: str
    namespace: str
    image: str
    selector: str
    pods: list[str]


def install_operator(real: RealNodeSession) -> OperatorRelease:
    """``helm install`` the chart with the locally built operator image; wait for its pod.

    ``pullPolicy: Never``: the pod must run the image imported into the node's
    containerd under the name the chart renders, never anything else. CRDs are the
    session's (installed with the node), so ``--skip-crds``. HTTPRoutes attach to the
    Gateway in :data:`GATEWAY_NAMESPACE`.
    """
    image = ensure_image(real, "operator")
    ensure_image(real, "runtime")
    helm.install(
        build.binary("helm"),
        REPO,
        real.kubeconfig,
        namespace=RELEASE_NAMESPACE,
        skip_crds=True,
        values={
            "operator.image.pullPolicy": "Never",
            "operator.verbose": "true",
            "config.gateway.namespace": GATEWAY_NAMESPACE,
        },
    )
    selector = f"app.kubernetes.io/instance={helm.RELEASE}"
    api = real.api_client()
    try:
        core = client.CoreV1Api(api)
        pods = eventually(
            lambda: ready_pods(core, RELEASE_NAMESPACE, selector), OPERATOR_READY_TIMEOUT
        )
    finally:
        api.close()
    names = [pod.metadata.name for pod in pods]
    return OperatorRelease(helm.RELEASE, RELEASE_NAMESPACE, image, selector, names)


def uninstall_operator(real: RealNodeSession, release: OperatorRelease) -> None:
    """``helm uninstall`` the operator's release."""
    helm.uninstall(
        build.binary("helm"), real.kubeconfig, release=release.release, namespace=release.namespace
    )


@dataclass(frozen=True)
class Tensor:
    """One V2 tensor: what a request sends or an answer must hold."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    """Exact values; None checks the shape only (probabilities, confidences)."""

    def request(self) -> dict[str, Any]:
        """Return the tensor as a V2 REST input."""
        return {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "data": self.data,
        }

    def grpc_input(self) -> grpcclient.InferInput:
        """Return the tensor as a tritonclient gRPC input."""
        tensor = grpcclient.InferInput(self.name, self.shape, self.datatype)
        dtype = np.float32 if self.datatype == "FP32" else np.float64
        tensor.set_data_from_numpy(np.asarray(self.data, dtype=dtype).reshape(self.shape))
        return tensor


@dataclass(frozen=True)
class Component:
    """One predictor of an example (the main one or a variant) and the answer it must give."""

    service: str
    """The Service name; ``{rev}`` is replaced by the component's revision (variants)."""
    variant: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    v1_instances: list[list[float]] | None
    """V1 ``:predict`` rows and the first output's values as predictions; None: V2 only."""


@dataclass(frozen=True)
class Example:
    """One examples/ folder: its model folders, where its isvc.yaml says they live, the answers."""

    folder: str
    uris: dict[str, str]
    """storageUri in isvc.yaml -> the folder make_model.py writes it to (relative to --out)."""
    components: list[Component] = field(default_factory=list)

    @property
    def isvc(self) -> dict[str, Any]:
        """Return the example's InferenceService as committed."""
        loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / self.folder / "isvc.yaml").read_text())
        return loaded

    @property
    def name(self) -> str:
        """Return the InferenceService (and model) name."""
        return str(self.isvc["metadata"]["name"])

    def match_headers(self, variant: str) -> dict[str, str]:
        """Return the headers isvc.yaml's ``match`` of ``variant`` routes to it."""
        for item in self.isvc["spec"].get("variants") or []:
            if item["name"] == variant:
                return dict(item.get("match", {}).get("headers", {}))
        raise KeyError(variant)


SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
ROWS = [*SETOSA, *VIRGINICA]
CLASSES = [0, 2]


def sklearn_component(service: str, variant: str = "predictor") -> Component:
    """A scikit-learn iris classifier: a setosa and a virginica, classes 0 and 2."""
    return Component(
        service,
        variant,
        [Tensor("input-0", "FP64", [2, 4], ROWS)],
        [Tensor("output-0", "INT64", [2], CLASSES)],
        [SETOSA, VIRGINICA],
    )


EXAMPLE_TABLE = [
    Example(
        "01-sklearn-iris", {"s3://kubeserve-examples/iris/v1": "."}, [sklearn_component("iris")]
    ),
    Example(
        "02-onnx-batching",
        {"s3://kubeserve-examples/iris-onnx/v1": "."},
        [
            Component(
                "iris-onnx",
                "predictor",
                [Tensor("float_input", "FP32", [2, 4], ROWS)],
                [Tensor("label", "INT64", [2], CLASSES), Tensor("probabilities", "FP32", [2, 3])],
                [SETOSA, VIRGINICA],
            )
        ],
    ),
    Example(
        "03-canary", {"s3://kubeserve-examples/iris/v1": "v1"}, [sklearn_component("iris-canary")]
    ),
    Example(
        "04-progressive",
        {"s3://kubeserve-examples/iris/v1": "v1"},
        [sklearn_component("iris-progressive")],
    ),
    Example(
        "05-ab-header",
        {"s3://kubeserve-examples/iris/v1": "a", "s3://kubeserve-examples/iris-tree/v1": "b"},
        [sklearn_component("iris-ab"), sklearn_component("iris-ab-b-{rev}", "b")],
    ),
    Example(
        "06-custom-handler",
        {"s3://kubeserve-examples/iris-custom/v1": "."},
        [
            Component(
                "iris-custom",
                "predictor",
                [Tensor("measurements_mm", "FP32", [2, 4], [v * 10 for v in ROWS])],
                [Tensor("species", "INT64", [2], CLASSES), Tensor("confidence", "FP32", [2])],
                [[v * 10 for v in SETOSA], [v * 10 for v in VIRGINICA]],
            )
        ],
    ),
]


def make_models(example: Example, out: Path) -> Path:
    """Run the example's own make_model.py into ``out``; return ``out``."""
    script = EXAMPLES / example.folder / "make_model.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, timeout=600)
    return out


def upload_models(
    real: RealNodeSession, example: Example, out: Path, namespace: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Upload each model folder of ``out`` to the node's store.

    Return isvc.yaml's storageUri -> the store's URI, and the Secret (named
    :data:`SECRET`, in ``namespace``) that gives pods the store's endpoint and keys.
    """
    uris: dict[str, str] = {}
    secret: dict[str, Any] = {}
    for uri, folder in example.uris.items():
        stored = real.store.upload(out / folder, f"{namespace}/{uri.removeprefix('s3://')}")
        uris[uri] = stored.uri
        secret = stored.secret(SECRET, namespace)
    return uris, secret


def pointed_at_store(isvc: Mapping[str, Any], uris: Mapping[str, str]) -> dict[str, Any]:
    """Return ``isvc`` with every storageUri (predictor and variants) mapped through ``uris``
    and the store's Secret as storageSecretRef; nothing else changes."""

    def predictor(spec: Mapping[str, Any]) -> dict[str, Any]:
        model = spec["model"]
        moved = {
            **model,
            "storageUri": uris[model["storageUri"]],
            "storageSecretRef": {"name": SECRET},
        }
        return {**spec, "model": moved}

    spec = {**isvc["spec"], "predictor": predictor(isvc["spec"]["predictor"])}
    if "variants" in spec:
        spec["variants"] = [{**v, "predictor": predictor(v["predictor"])} for v in spec["variants"]]
    return {**isvc, "spec": spec}


def revision_of(isvc: Mapping[str, Any], variant: str) -> str:
    """Return the stable revision of one component, from the isvc's status.variants."""
    for item in isvc.get("status", {}).get("variants") or []:
        if item.get("name") == variant:
            return str(item["revision"])
    raise KeyError(f"no variant {variant} in status {isvc.get('status')}")


def check_outputs(answer: Mapping[str, Any], wanted: Sequence[Tensor]) -> None:
    """Assert a V2 answer holds every wanted output with its shape and, where given, values."""
    outputs = {o["name"]: o for o in answer["outputs"]}
    for tensor in wanted:
        got = outputs[tensor.name]
        assert got["shape"] == tensor.shape, (tensor.name, got)
        if tensor.data is not None:
            assert got["data"] == tensor.data, (tensor.name, got)


def v2_infer(
    base: str, model: str, component: Component, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """POST a V2 REST infer request; return the answer after checking it."""
    body = {"inputs": [t.request() for t in component.inputs]}
    url = f"{base}/v2/models/{model}/infer"
    response = httpx.post(url, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    check_outputs(answer, component.outputs)
    return answer


def v1_predict(
    base: str, model: str, component: Component, headers: Mapping[str, str] | None = None
) -> None:
    """POST a V1 ``:predict`` request; check the predictions against the first output.

    One output gives plain predictions; several give one object per row, keyed by output.
    """
    assert component.v1_instances is not None
    body = {"instances": component.v1_instances}
    url = f"{base}/v1/models/{model}:predict"
    response = httpx.post(url, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    first = component.outputs[0]
    if len(component.outputs) > 1:
        predictions = [row[first.name] for row in predictions]
    assert predictions == first.data, predictions


def grpc_infer(target: str, model: str, component: Component) -> None:
    """Run a V2 gRPC ModelInfer (tritonclient); check the outputs' shapes and values."""
    grpc = grpcclient.InferenceServerClient(url=target)
    try:
        assert grpc.is_model_ready(model)
        result = grpc.infer(model, [t.grpc_input() for t in component.inputs])
        for tensor in component.outputs:
            got = result.as_numpy(tensor.name)
            assert got is not None, tensor.name
            assert list(got.shape) == tensor.shape, (tensor.name, got.shape)
            if tensor.data is not None:
                assert got.tolist() == tensor.data, (tensor.name, got)
    finally:
        grpc.close()
