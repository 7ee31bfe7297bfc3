"""KServe ``serving.kserve.io/v1beta1`` InferenceService -> kubeserve InferenceService.

Limits first: only the predictor is converted. Transformers, explainers and
InferenceGraphs have no kubeserve equivalent; Knative settings do not apply (kubeserve
runs plain Deployments with an HPA, like KServe's RawDeployment mode); the bundled
runtime serves onnx, sklearn, xgboost, lightgbm and TorchScript, so other formats
(tensorflow, triton, huggingface, ...) cannot be converted as models. The payload
logger's ``url`` and ``mode`` become ``logger`` with one http sink (the same CloudEvents
headers, so the consumer keeps working); its other settings are reported. Every field that
is not carried over is reported with the reason; so are fields this converter does not
know (a newer KServe's), through :meth:`Ledger.unaccounted`.

Carried over: name, namespace, labels and the user's own annotations; the predictor's
model format and version (``model.modelFormat`` or the older ``predictor.<framework>``
form), storageUri, protocolVersion, resources, env; min/max replicas, scale metric and
target (also from Knative/KServe autoscaling annotations when the predictor leaves them
unset), serviceAccountName, nodeSelector, tolerations, topology spread; batcher;
canaryTrafficPercent (to ``spec.rollout``); a custom container; the payload logger
(``url``, ``mode``).

The result is checked with kubeserve's own models (the API server's rules); a result
that fails them is returned as errors, never as YAML that the cluster would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from kubeserve.api.v1alpha1 import STORAGE_URI_PATTERN, InferenceService
from kubeserve.convert.ledger import Ledger, Note, Path, render

API_VERSION = "serving.kserve.io/v1beta1"
TARGET_API_VERSION = "serving.kubeserve.io/v1alpha1"

FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch")
"""KServe model format names the kubeserve runtime serves (same names)."""

OLD_SCHEMA = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "pytorch",
    "tensorflow",
    "triton",
    "pmml",
    "paddle",
    "huggingface",
)
"""``predictor.<framework>`` keys of KServe's older predictor form."""

FORMAT_NOTES = {
    "pytorch": "kubeserve's pytorch format loads TorchScript (model.pt); KServe's default "
    "pytorch runtime is TorchServe (.mar archive): save the model with torch.jit.save "
    "if it is not TorchScript already",
}

PROTOCOLS = {"v1": "v1", "v2": "v2", "grpc-v2": "v2"}
"""KServe protocolVersion -> kubeserve's; kubeserve serves REST and gRPC in both."""

SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")

SERVER_WRITTEN = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
)

RUNTIME_CONTAINER = (
    "a setting of KServe's runtime container; kubeserve's runtime container is built by "
    "the operator (its own image, arguments, ports and probes)"
)

COMPONENT_REASONS = {
    "containerConcurrency": "kubeserve has no hard per-pod request limit; scaleMetric "
    "concurrency with scaleTarget scales on in-flight requests instead",
    "timeout": "kubeserve sets no per-request timeout; set one on your Gateway's HTTPRoute "
    "or ingress if you need it",
    "affinity": "kubeserve spreads replicas over nodes and zones by default; use "
    "nodeSelector, tolerations and topologySpreadConstraints",
    "labels": "kubeserve sets the predictor pods' labels itself",
    "annotations": "kubeserve sets the predictor pods' annotations itself",
    "deploymentStrategy": "kubeserve rolls out revisions itself (spec.rollout)",
    "volumes": "kubeserve mounts the model at /mnt/models; other volumes are not supported",
    "imagePullSecrets": "give the pull secrets to the predictor's ServiceAccount "
    "(serviceAccountName) instead",
    "workerSpec": "multi-node (worker) serving is not supported",
    "autoScaling": "kubeserve autoscales on one metric: scaleMetric and scaleTarget",
}

KNATIVE_PREFIXES = (
    "autoscaling.knative.dev/",
    "serving.knative.dev/",
    "networking.knative.dev/",
    "features.knative.dev/",
)
KNATIVE_REASON = (
    "a Knative Serving setting; kubeserve runs plain Deployments with an HPA (no Knative, "
    "no scale to zero)"
)

ANNOTATION_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "autoscaling.knative.dev/target": ("scaleTarget", int),
    "autoscaling.knative.dev/metric": ("scaleMetric", str),
    "autoscaling.knative.dev/min-scale": ("minReplicas", int),
    "autoscaling.knative.dev/minScale": ("minReplicas", int),
    "autoscaling.knative.dev/max-scale": ("maxReplicas", int),
    "autoscaling.knative.dev/maxScale": ("maxReplicas", int),
    "serving.kserve.io/metric": ("scaleMetric", str),
    "serving.kserve.io/targetUtilizationPercentage": ("scaleTarget", int),
}
"""Annotations that set a predictor field when the predictor leaves it unset."""

ANNOTATION_REASONS = {
    "serving.kserve.io/deploymentMode": "kubeserve always creates Deployments (KServe's "
    "RawDeployment mode)",
    "serving.kserve.io/autoscalerClass": "kubeserve autoscales with an HPA when maxReplicas "
    "> minReplicas",
    "kubectl.kubernetes.io/last-applied-configuration": "written by kubectl apply",
}


class ConversionError(ValueError):
    """The input cannot become a kubeserve InferenceService; the message says why."""


@dataclass(frozen=True)
class Conversion:
    """The outcome of converting one document."""

    name: str
    result: dict[str, Any] | None
    """The kubeserve InferenceService, or None when it could not be converted."""
    notes: tuple[Note, ...]
    errors: tuple[str, ...]
    """Why ``result`` is None (empty when converted)."""

    def report(self) -> str:
        """Field by field: what was changed or not carried over, then any error."""
        head = f"{self.name}: " + ("converted" if self.result else "NOT converted")
        lines = [head]
        lines += [note.line() for note in self.notes if note.outcome != "mapped"]
        lines += [f"  error: {error}" for error in self.errors]
        return "\n".join(lines)


def convert(source: Mapping[str, Any]) -> Conversion:
    """Convert one KServe document; never raises for a bad input, it reports it."""
    ledger = Ledger(source)
    name = f"{source.get('kind', '?')}/{ledger.get(('metadata', 'name'), '?')}"
    try:
        result: dict[str, Any] | None = _inference_service(ledger)
        errors: tuple[str, ...] = ()
    except ConversionError as exc:
        result, errors = None, (str(exc),)
    for path in ledger.unaccounted():
        ledger.drop(path, "not known to this converter, so not carried over")
    if result is not None:
        try:
            result = InferenceService.from_object(result).model_dump(
                mode="json", by_alias=True, exclude_unset=True
            )
        except pydantic.ValidationError as exc:
            result = None
            errors = tuple(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return Conversion(name, result, tuple(ledger.notes), errors)


def _inference_service(ledger: Ledger) -> dict[str, Any]:
    """Return the kubeserve object; raise ConversionError when the input cannot be one."""
    kind, api_version = ledger.get(("kind",)), ledger.get(("apiVersion",))
    if kind == "InferenceGraph":
        ledger.drop(
            (),
            "an InferenceGraph chains models; kubeserve has no graph, so "
            "convert each InferenceService it routes to on its own",
        )
        raise ConversionError("InferenceGraph has no kubeserve equivalent")
    if kind != "InferenceService" or api_version != API_VERSION:
        ledger.drop((), f"not a {API_VERSION} InferenceService")
        raise ConversionError(
            f"expected a {API_VERSION} InferenceService, got {api_version} {kind}"
        )
    ledger.take(("apiVersion",), "apiVersion", f"now {TARGET_API_VERSION}")
    ledger.take(("kind",), "kind")
    if ledger.has(("status",)):
        ledger.drop(("status",), "status is written by the operator")
    metadata, defaults = _metadata(ledger)
    predictor, rollout = _predictor(ledger, ("spec", "predictor"), defaults)
    for component in ("transformer", "explainer"):
        if ledger.has(("spec", component)):
            ledger.drop(("spec", component), _COMPONENT_DROPS[component])
    spec: dict[str, Any] = {"predictor": predictor}
    if rollout:
        spec["rollout"] = rollout
    return {
        "apiVersion": TARGET_API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec,
    }


_COMPONENT_DROPS = {
    "transformer": "kubeserve has no transformer component; move pre- and post-processing "
    "into a custom handler (modelFormat custom: preprocess/postprocess in handler.py)",
    "explainer": "kubeserve has no explainer component; serve an explainer as its own "
    "InferenceService (a custom container or handler)",
}


def _metadata(ledger: Ledger) -> tuple[dict[str, Any], dict[str, tuple[Path, Any]]]:
    """Return (metadata, predictor fields set by annotations: field -> (source, value))."""
    metadata: dict[str, Any] = {}
    base: Path = ("metadata",)
    if not ledger.has((*base, "name")):
        raise ConversionError("metadata.name is missing")
    metadata["name"] = ledger.take((*base, "name"), "metadata.name")
    if ledger.has((*base, "namespace")):
        metadata["namespace"] = ledger.take((*base, "namespace"), "metadata.namespace")
    if ledger.has((*base, "labels")):
        metadata["labels"] = dict(ledger.take((*base, "labels"), "metadata.labels"))
    for key in SERVER_WRITTEN:
        if ledger.has((*base, key)):
            ledger.drop((*base, key), "written by the API server; a new object gets its own")
    defaults: dict[str, tuple[Path, Any]] = {}
    kept: dict[str, str] = {}
    for key, value in (ledger.get((*base, "annotations")) or {}).items():
        path: Path = (*base, "annotations", key)
        if key in ANNOTATION_FIELDS:
            field, parse = ANNOTATION_FIELDS[key]
            try:
                defaults[field] = (path, parse(value))
            except ValueError:
                ledger.drop(path, f"{value!r} is not a whole number")
        elif key in ANNOTATION_REASONS:
            ledger.drop(path, ANNOTATION_REASONS[key])
        elif key.startswith(KNATIVE_PREFIXES):
            ledger.drop(path, KNATIVE_REASON)
        elif key.startswith("serving.kserve.io/"):
            ledger.drop(path, "a KServe controller setting with no kubeserve equivalent")
        else:
            kept[key] = ledger.take(path, f"metadata.annotations.{key}")
    if kept:
        metadata["annotations"] = kept
    if ledger.get((*base, "annotations")) == {}:
        ledger.take((*base, "annotations"), "metadata.annotations")
    return metadata, defaults


def _predictor(
    ledger: Ledger, base: Path, defaults: Mapping[str, tuple[Path, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (kubeserve predictor, rollout) from KServe's predictor at ``base``."""
    if not ledger.has(base):
        raise ConversionError("spec.predictor is missing")
    target = "spec.predictor"
    predictor: dict[str, Any] = {}
    frameworks = [key for key in OLD_SCHEMA if ledger.has((*base, key))]
    if ledger.has((*base, "model")) or frameworks:
        if ledger.has((*base, "model")):
            predictor["model"] = _model(ledger, (*base, "model"), None)
        else:
            predictor["model"] = _model(ledger, (*base, frameworks[0]), frameworks[0])
        for extra in frameworks[0 if ledger.has((*base, "model")) else 1 :]:
            ledger.drop((*base, extra), "a second model; kubeserve serves one per predictor")
        if ledger.has((*base, "containers")):
            ledger.drop(
                (*base, "containers"), "sidecar containers beside a model are not supported"
            )
    elif ledger.has((*base, "containers")):
        predictor["containers"] = [_container(ledger, (*base, "containers"))]
    else:
        raise ConversionError(f"{render(base)} has neither a model nor containers")

    for key in ("serviceAccountName", "nodeSelector", "tolerations", "scaleTarget"):
        if ledger.has((*base, key)):
            predictor[key] = ledger.take((*base, key), f"{target}.{key}")
    metric = ledger.get((*base, "scaleMetric"))
    if metric is not None:
        if metric in SCALE_METRICS:
            predictor["scaleMetric"] = ledger.take((*base, "scaleMetric"), f"{target}.scaleMetric")
        else:
            ledger.drop((*base, "scaleMetric"), f"kubeserve scales on {', '.join(SCALE_METRICS)}")
    if ledger.has((*base, "minReplicas")):
        minimum = ledger.get((*base, "minReplicas"))
        reason = "kubeserve has no scale to zero; at least one replica runs" if minimum == 0 else ""
        predictor["minReplicas"] = max(
            1, ledger.take((*base, "minReplicas"), f"{target}.minReplicas", reason)
        )
    if ledger.has((*base, "maxReplicas")):
        if ledger.get((*base, "maxReplicas")) == 0:
            ledger.drop(
                (*base, "maxReplicas"),
                "0 means 'no limit' in KServe; kubeserve needs "
                "a number to autoscale, so set maxReplicas",
            )
        else:
            predictor["maxReplicas"] = ledger.take((*base, "maxReplicas"), f"{target}.maxReplicas")
    for field, (path, value) in defaults.items():
        if field in predictor:
            ledger.drop(path, f"the predictor's own {field} wins")
        elif field == "scaleMetric" and value not in SCALE_METRICS:
            ledger.drop(path, f"kubeserve scales on {', '.join(SCALE_METRICS)}")
        else:
            reason = "" if isinstance(value, str) else "the annotation's text, read as a number"
            ledger.take(path, f"{target}.{field}", reason)
            predictor[field] = value
    if ledger.has((*base, "topologySpreadConstraints")):
        predictor["topologySpreadConstraints"] = _spread(
            ledger, (*base, "topologySpreadConstraints")
        )
    if ledger.has((*base, "batcher")):
        predictor["batcher"] = _batcher(ledger, (*base, "batcher"))
    rollout: dict[str, Any] = {}
    if ledger.has((*base, "canaryTrafficPercent")):
        rollout["canaryTrafficPercent"] = ledger.take(
            (*base, "canaryTrafficPercent"), "spec.rollout.canaryTrafficPercent"
        )
    if ledger.has((*base, "logger")):
        logger = _logger(ledger, (*base, "logger"), "model" in predictor)
        if logger is not None:
            predictor["logger"] = logger
    for key, reason in COMPONENT_REASONS.items():
        if ledger.has((*base, key)):
            ledger.drop((*base, key), reason)
    return predictor, rollout


LOGGER_MODES = ("all", "request", "response")


def _logger(ledger: Ledger, base: Path, has_model: bool) -> dict[str, Any] | None:
    """Return kubeserve's ``logger`` from KServe's (``url`` and ``mode``), or None."""
    if not has_model:
        ledger.drop(base, "kubeserve's runtime logs payloads; a custom container logs its own")
        return None
    url = ledger.get((*base, "url"))
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        ledger.drop(
            base,
            "no http(s) url: KServe would send to its configured default; name the "
            "receiver in logger.sinks",
        )
        return None
    target = "spec.predictor.logger"
    logger: dict[str, Any] = {
        "sinks": [{"http": {"url": ledger.take((*base, "url"), f"{target}.sinks[0].http.url")}}]
    }
    mode = ledger.get((*base, "mode"))
    if mode in LOGGER_MODES:
        logger["mode"] = ledger.take((*base, "mode"), f"{target}.mode")
    elif ledger.has((*base, "mode")):
        ledger.drop((*base, "mode"), f"kubeserve logs {', '.join(LOGGER_MODES)}; all is used")
    if ledger.has((*base, "metadataHeaders")):
        ledger.drop(
            (*base, "metadataHeaders"),
            "kubeserve's events carry no request headers (ce-metadata is not sent)",
        )
    return logger


def _model(ledger: Ledger, base: Path, framework: str | None) -> dict[str, Any]:
    """Return kubeserve's ``model`` from KServe's ``model`` (or ``<framework>``) block."""
    target = "spec.predictor.model"
    if framework is None:
        name = ledger.get((*base, "modelFormat", "name"))
        fmt_path: Path = (*base, "modelFormat", "name")
    else:
        name, fmt_path = framework, base
    if name not in FORMATS:
        ledger.drop(
            base,
            f"the {name!r} format is not served by kubeserve's runtime "
            f"({', '.join(FORMATS)}); serve it with a custom container instead",
        )
        raise ConversionError(f"model format {name!r} cannot be converted")
    model: dict[str, Any] = {"modelFormat": {"name": name}}
    if framework is None:
        ledger.take(fmt_path, f"{target}.modelFormat.name", FORMAT_NOTES.get(name, ""))
        if ledger.has((*base, "modelFormat", "version")):
            model["modelFormat"]["version"] = str(
                ledger.take((*base, "modelFormat", "version"), f"{target}.modelFormat.version")
            )
    uri = ledger.get((*base, "storageUri"))
    if uri is None:
        raise ConversionError(f"{render(base)}.storageUri is missing; kubeserve needs one")
    if re.match(STORAGE_URI_PATTERN, uri) is None:
        ledger.drop(
            (*base, "storageUri"),
            "kubeserve downloads from s3://, gs://, http(s)://, pvc:// and file:// only",
        )
        raise ConversionError(f"storageUri {uri!r} has a scheme kubeserve cannot fetch")
    # the old form names the format by its key: the format's note goes on the model's URI
    note = FORMAT_NOTES.get(name, "") if framework else ""
    model["storageUri"] = ledger.take((*base, "storageUri"), f"{target}.storageUri", note)
    protocol = ledger.get((*base, "protocolVersion"))
    if protocol is not None:
        if protocol in PROTOCOLS:
            reason = "kubeserve serves V2 over REST and gRPC" if protocol == "grpc-v2" else ""
            ledger.take((*base, "protocolVersion"), f"{target}.protocolVersion", reason)
            model["protocolVersion"] = PROTOCOLS[protocol]
        else:
            ledger.drop((*base, "protocolVersion"), "kubeserve speaks v1 and v2")
    if ledger.has((*base, "resources")):
        model["resources"] = _resources(ledger, (*base, "resources"), f"{target}.resources")
    if ledger.has((*base, "env")):
        model["env"] = _env(ledger, (*base, "env"), f"{target}.env")
    reasons = {
        "runtime": "kubeserve has one bundled runtime; modelFormat picks the loader",
        "runtimeVersion": "a tag of KServe's runtime image; kubeserve's runtimeVersion names "
        "a kubeserve runtime tag",
        "storage": "KServe's storage-config keys; put the credentials in a Secret "
        "(AWS_* keys) and name it in model.storageSecretRef",
        "modelClassName": "a TorchServe setting; kubeserve loads TorchScript",
    }
    for key in ledger.get(base) or {}:
        if not ledger.settled((*base, key)):
            ledger.drop((*base, key), reasons.get(key, RUNTIME_CONTAINER))
    return model


def _resources(ledger: Ledger, base: Path, target: str) -> dict[str, Any]:
    """requests and limits; other keys (claims) reported."""
    out: dict[str, Any] = {}
    for key in ledger.get(base) or {}:
        if key in ("requests", "limits"):
            out[key] = ledger.take((*base, key), f"{target}.{key}")
        else:
            ledger.drop((*base, key), "kubeserve sets requests and limits only")
    if not out:
        ledger.take(base, target)
    return out


_ENV_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef")


def _env(ledger: Ledger, base: Path, target: str) -> list[dict[str, Any]]:
    """Environment variables; ones from a source kubeserve lacks (resourceFieldRef) reported."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(ledger.get(base) or []):
        source = item.get("valueFrom") or {}
        if any(key not in _ENV_SOURCES for key in source):
            ledger.drop(
                (*base, index),
                "kubeserve env takes a value, secretKeyRef, configMapKeyRef or fieldRef",
            )
            continue
        out.append(ledger.take((*base, index), f"{target}[{len(out)}]"))
    if not ledger.get(base):
        ledger.take(base, target)
    return out


def _container(ledger: Ledger, base: Path) -> dict[str, Any]:
    """The first custom container; the fields kubeserve's CustomContainer has."""
    target = "spec.predictor.containers[0]"
    first: Path = (*base, 0)
    container: dict[str, Any] = {}
    for key in ("name", "image", "command", "args"):
        if ledger.has((*first, key)):
            container[key] = ledger.take((*first, key), f"{target}.{key}")
    if ledger.has((*first, "resources")):
        container["resources"] = _resources(ledger, (*first, "resources"), f"{target}.resources")
    if ledger.has((*first, "env")):
        container["env"] = _env(ledger, (*first, "env"), f"{target}.env")
    for key in ledger.get(first) or {}:
        if not ledger.settled((*first, key)):
            ledger.drop(
                (*first, key),
                "kubeserve runs the container with its own ports and "
                "probes: it must listen on 8080 and answer /v2/health/ready",
            )
    for index in range(1, len(ledger.get(base) or [])):
        ledger.drop((*base, index), "kubeserve runs one container per predictor")
    return container


_SPREAD_KEYS = ("topologyKey", "maxSkew", "whenUnsatisfiable", "minDomains")


def _spread(ledger: Ledger, base: Path) -> list[dict[str, Any]]:
    """Topology spread constraints; kubeserve picks each revision's pods itself."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(ledger.get(base) or []):
        entry = {}
        for key in item:
            path = (*base, index, key)
            if key in _SPREAD_KEYS:
                entry[key] = ledger.take(
                    path, f"spec.predictor.topologySpreadConstraints[{index}].{key}"
                )
            else:
                ledger.drop(path, "kubeserve selects each revision's own pods")
        out.append(entry)
    return out


def _batcher(ledger: Ledger, base: Path) -> dict[str, Any]:
    """KServe's batcher (maxLatency in ms) -> kubeserve's."""
    out: dict[str, Any] = {}
    if ledger.has((*base, "maxBatchSize")):
        out["maxBatchSize"] = ledger.take(
            (*base, "maxBatchSize"), "spec.predictor.batcher.maxBatchSize"
        )
    if ledger.has((*base, "maxLatency")):
        out["maxLatencyMs"] = ledger.take(
            (*base, "maxLatency"), "spec.predictor.batcher.maxLatencyMs"
        )
    if ledger.has((*base, "timeout")):
        ledger.drop(
            (*base, "timeout"),
            "kubeserve's batcher has no separate timeout; maxLatencyMs bounds the wait",
        )
    if not out:
        ledger.take(base, "spec.predictor.batcher", "an empty batcher uses kubeserve's defaults")
    return out
