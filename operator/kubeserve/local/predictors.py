"""Which predictors ``kubeserve local`` runs: one per predictor Deployment the operator
would create, read from the rendered objects (the builders are the one source of truth).

Limits: only Deployments with replicas > 0 of the initial plan (each component's
current revision; no canary is replayed); a predictor with its own container image
(``spec.predictor.containers``) is refused, since only the model runtime runs here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeserve.local.errors import LocalError
from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve_runtime.contract import ENV_MODEL_NAME, LABEL_REVISION, LABEL_VARIANT

_COMPONENT_PREFIX = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(.+)$")


@dataclass(frozen=True)
class Predictor:
    """One predictor Deployment of the rendered InferenceService, as a local process."""

    component: str
    revision: str
    deployment: str
    storage_uri: str
    download_args: tuple[str, ...]
    """The storage initializer's arguments: ``download URI DIR [--link]``."""
    serve_args: tuple[str, ...]
    """The runtime container's arguments (``serve``)."""
    env: Mapping[str, str]
    """The runtime container's literal environment."""
    skipped_env: tuple[str, ...] = ()
    """Variables set from Secrets/ConfigMaps in the pod; unknown here."""
    routing: str = ""
    """How the cluster routes traffic to it, for the printout."""

    @property
    def model_name(self) -> str:
        """The name clients use in URLs."""
        return self.env.get(ENV_MODEL_NAME, "")


def load(path: str, name: str | None = None) -> dict[str, Any]:
    """The one InferenceService of a file (or the one called `name`)."""
    from kubeserve.render import documents

    try:
        with open(path, encoding="utf-8") as stream:
            objs = list(documents(stream, path))
    except OSError as exc:
        raise LocalError(f"{path}: {exc.strerror}") from exc
    if name is not None:
        objs = [o for o in objs if (o.get("metadata") or {}).get("name") == name]
        if not objs:
            raise LocalError(f"{path}: no InferenceService named {name!r}")
    if len(objs) > 1:
        names = ", ".join(str((o.get("metadata") or {}).get("name")) for o in objs)
        raise LocalError(f"{path} holds {len(objs)} InferenceServices ({names}); pick one: --name")
    return objs[0]


def predictors(obj: Mapping[str, Any]) -> list[Predictor]:
    """The predictors the operator would run for `obj`, from its rendered Deployments."""
    from kubeserve.builders.pod import INITIALIZER_CONTAINER, RUNTIME_CONTAINER
    from kubeserve.config import OperatorConfig
    from kubeserve.render import render_object

    children = render_object(obj, OperatorConfig(), dt.datetime.now(dt.UTC))
    spec = obj["spec"]
    order = [DEFAULT_COMPONENT] + [v["name"] for v in spec.get("variants") or []]
    found: list[Predictor] = []
    for child in children:
        if child["kind"] != "Deployment" or child["spec"].get("replicas", 1) == 0:
            continue
        labels = child["metadata"]["labels"]
        component = labels[LABEL_VARIANT]
        pod = child["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in pod["containers"]}
        inits = {c["name"]: c for c in pod.get("initContainers", [])}
        if RUNTIME_CONTAINER not in containers or INITIALIZER_CONTAINER not in inits:
            raise LocalError(
                f"{component} runs its own container image, not a model; "
                "kubeserve local runs only predictors with spec.model"
            )
        runtime = containers[RUNTIME_CONTAINER]
        env = {e["name"]: e["value"] for e in runtime.get("env", []) if "value" in e}
        skipped = tuple(e["name"] for e in runtime.get("env", []) if "value" not in e)
        download = tuple(inits[INITIALIZER_CONTAINER]["args"])
        found.append(
            Predictor(
                component=component,
                revision=labels[LABEL_REVISION],
                deployment=child["metadata"]["name"],
                storage_uri=download[1],
                download_args=download,
                serve_args=tuple(runtime["args"]),
                env=env,
                skipped_env=skipped,
                routing=_routing(spec, component),
            )
        )
    return sorted(found, key=lambda p: order.index(p.component))


def _routing(spec: Mapping[str, Any], component: str) -> str:
    """A sentence on how the cluster sends traffic to one component."""
    variants = spec.get("variants") or []
    if component == DEFAULT_COMPONENT:
        share = 100 - sum(int(v.get("weight", 0)) for v in variants)
        return f"{share}% of traffic" if variants else "all traffic"
    for variant in variants:
        if variant["name"] == component:
            parts = [f"{variant.get('weight', 0)}% of traffic"]
            headers = (variant.get("match") or {}).get("headers") or {}
            parts += [f"requests with header {k}: {v}" for k, v in sorted(headers.items())]
            if (spec.get("mirror") or {}).get("variant") == component:
                parts.append(f"a {spec['mirror'].get('percent', 100)}% mirror")
            return ", ".join(parts)
    return ""


def parse_overrides(
    values: Sequence[str] | None, what: str, known: Sequence[str]
) -> dict[str, str]:
    """``[COMPONENT=]VALUE`` flags as {component: value}; no prefix = the main predictor."""
    out: dict[str, str] = {}
    for value in values or ():
        match = _COMPONENT_PREFIX.match(value)
        component, item = (
            (match.group(1), match.group(3))
            if match and match.group(1) in known
            else (DEFAULT_COMPONENT, value)
        )
        if component in out:
            raise LocalError(f"{what} given twice for {component}")
        out[component] = item
    return out
