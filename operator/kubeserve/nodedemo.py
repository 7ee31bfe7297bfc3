"""The demo on a real kubelet node: a prediction from a pod through the Gateway, then a canary.

Used by :mod:`kubeserve.demo` when :func:`reasons` is empty; otherwise the demo runs on
KWOK's simulated node and says why. Limits first:
- It needs root, the Debian packages of ``kubeserve cluster prepare-host`` and the node
  builds (kubelet, kube-proxy, Traefik, the runtime image): what is missing is built
  first, announced with its cost (a cold Traefik build alone is many minutes).
- The model store is moto's S3 server inside this process (objects in memory): once the
  demo ends, pods that restart cannot download their model again. The node, the control
  plane, the Gateway and the InferenceService keep running until ``kubeserve cluster down``.
- The operator runs as a local process (``kubeserve run``) for the demo's namespace and
  stops with the demo; the tests install it with helm in a pod.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

if TYPE_CHECKING:
    from kubeserve.devcluster.gateway import Gateway
    from kubeserve.devcluster.modelstore import ModelStore, StoredModel
    from kubeserve.devcluster.node import RealNode

T = TypeVar("T")

CANARY_PERCENT = 10
CANARY_REQUESTS = 50
REAL_NODE_ENV = "KUBESERVE_DEMO_REAL_NODE"
"""Set to 0 to run the demo on the simulated node even where a real node could run."""
SECRET_NAME = "iris-storage"
Print = Callable[[str], None]


def reasons() -> list[str]:
    """Return why the demo cannot use a real node here (empty: it will)."""
    from kubeserve.devcluster import node, session

    if os.environ.get(REAL_NODE_ENV, "1") == "0":
        return [f"{REAL_NODE_ENV}=0 asks for the simulated node"]
    if session.existing_kubeconfig() is not None:
        return ["KUBECONFIG names a running cluster, which the demo uses as it is"]
    return node.host_reasons()


def ensure_built(say: Print) -> list[Path]:
    """Build whatever the real node still lacks; return the image archives to import."""
    from kubeserve.devcluster import build, versions
    from kubeserve.images import catalog

    missing = build.missing(versions.ALL_COMPONENTS)
    if missing:
        say(
            "building from source with Go, once: "
            + ", ".join(item.key for item in missing)
            + "\n    (cold on 2 cores: the control plane about 7-11 min, kubelet and kube-proxy"
            " about 1 min more, Traefik 15 min or more; later runs start in seconds)"
        )
        build.ensure_built(log=lambda line: say(f"    {line}"), components=versions.ALL_COMPONENTS)
    archives = []
    for name in catalog.NAMES:
        built = catalog.build_image(name, lambda line: say(f"    {line}"))
        state = "cached" if built.cached else f"built in {built.seconds:.0f}s"
        say(f"    image {built.reference}: {state}")
        archives.append(built.path)
    return archives


@contextmanager
def real_node(say: Print) -> Iterator[tuple[RealNode, Gateway]]:
    """Start (or reuse) the machine's real node with its Gateway; leave it running."""
    from kubeserve.devcluster import controlplane, gateway, node

    archives = ensure_built(say)
    part = gateway.GatewayPart()
    record = node.running_record()
    root = controlplane.state_dir()
    if record is not None and Path(record.cluster) == root:
        cluster = controlplane.Cluster.load(root)
        if cluster is None:
            raise controlplane.ClusterError(f"a real node's record names {root}, but no cluster")
        real = node.RealNode(cluster, node.node_name()[0])
        say(f"reusing the running real node {real.name} (kubeserve cluster down stops it)")
    else:
        if controlplane.running(root) is not None:
            raise controlplane.ClusterError(
                "a KWOK control plane runs in the demo's folder: stop it first with "
                "`kubeserve cluster down`, then run the demo again for a real node"
            )
        real = node.up(root, archives, parts=[part])
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in real.timings.items())
        say(f"node {real.name} Ready at {real.address}: {steps}")
    running = part.gateway(real)
    if running is None:
        raise controlplane.ClusterError("the real node runs without its Gateway")
    yield real, running


def host_header(isvc: dict[str, Any]) -> str:
    """Return the host name the Gateway routes to this InferenceService."""
    url: str = isvc["status"]["url"]
    return httpx.URL(url).host


ROUTE_TIMEOUT = 60.0
"""Seconds to wait for kube-proxy or Traefik to route to a pod that is already Ready."""


class _NotRouted(Exception):
    """The Service or the Gateway does not route to the pod yet."""


def _until_routed(attempt: Callable[[], T], every: float) -> T:
    """Return ``attempt()`` once it stops raising _NotRouted; re-raise it after ROUTE_TIMEOUT."""
    retrying = Retrying(
        stop=stop_after_delay(ROUTE_TIMEOUT),
        wait=wait_fixed(every),
        retry=retry_if_exception_type(_NotRouted),
        reraise=True,
    )
    return retrying(attempt)


def answered(send: Callable[[], httpx.Response]) -> httpx.Response:
    """Return the first 2xx answer of ``send``; retry while nothing routes to the pod yet.

    Connection refused (no Service rule yet) and 404/503 from the Gateway (route or
    endpoints not loaded yet) are retried up to ROUTE_TIMEOUT; any other answer is final.
    """

    def attempt() -> httpx.Response:
        try:
            answer = send()
        except httpx.ConnectError as exc:
            raise _NotRouted(str(exc)) from exc
        if answer.status_code in (404, 503):
            raise _NotRouted(f"HTTP {answer.status_code}: {answer.text[:200]}")
        answer.raise_for_status()
        return answer

    return _until_routed(attempt, every=0.2)


def await_version(
    gateway_url: str, host: str, model: str, body: dict[str, Any], version: str
) -> int:
    """Send predictions through the Gateway until one comes from ``version``; return how many.

    A canary's pod can be Ready before Traefik has loaded the new weights and endpoints;
    counting the split starts only once the canary has answered.
    """
    sent = 0

    def attempt() -> None:
        nonlocal sent
        with httpx.Client(base_url=gateway_url, headers={"Host": host}, timeout=10) as http:
            sent += 1
            answer = answered(lambda: http.post(f"/v2/models/{model}/infer", json=body))
        if answer.json()["model_version"] != version:
            raise _NotRouted(f"answered by {answer.json()['model_version']}")

    _until_routed(attempt, every=0.05)
    return sent


def count_versions(
    gateway_url: str, host: str, model: str, body: dict[str, Any], requests: int
) -> collections.Counter[str]:
    """Send ``requests`` V2 predictions through the Gateway; count answers per model version."""
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=gateway_url, headers={"Host": host}, timeout=10) as http:
        for _ in range(requests):
            answer = http.post(f"/v2/models/{model}/infer", json=body)
            answer.raise_for_status()
            counts[answer.json()["model_version"]] += 1
    return counts


def upload_model(store: ModelStore, make_model: Path, workdir: Path, prefix: str) -> StoredModel:
    """Train with the example's script into ``workdir/prefix``, upload, return where it is."""
    out = workdir / prefix
    subprocess.run([sys.executable, str(make_model), "--out", str(out)], check=True)
    return store.upload(out, prefix)


def isvc_with_model(isvc: dict[str, Any], uri: str, canary: int | None) -> dict[str, Any]:
    """Return the example's InferenceService pointed at ``uri`` (and a canary percent)."""
    model = {**isvc["spec"]["predictor"]["model"], "storageUri": uri}
    model["storageSecretRef"] = {"name": SECRET_NAME}
    spec = {**isvc["spec"], "predictor": {**isvc["spec"]["predictor"], "model": model}}
    if canary is not None:
        spec["rollout"] = {**spec.get("rollout", {}), "canaryTrafficPercent": canary}
    return {**isvc, "spec": spec}


def manifest(obj: dict[str, Any]) -> str:
    """Return one object as YAML for kubectl's stdin."""
    return yaml.safe_dump(obj, sort_keys=False)
