"""The transport-neutral data plane: what REST (V1, V2) and gRPC all call.

It owns the loaded model, the input validator, the scheduler (direct or batching), the
metrics and the drift monitor. Transports decode wire formats into ``InferRequest``,
call ``infer`` / ``predict_v1`` / the metadata methods, encode the result, and report
the outcome with ``record``. Every failure is a ``ServingError`` with its status.
When a payload logger is configured, each successful prediction it samples is handed
to it as a ``payloadlog.Record`` (references to the tensors and a non-blocking enqueue
per sink; encoding and delivery happen on the sinks' threads).

A response to a request without an ``id`` gets a random version-4 UUID drawn from
``random.getrandbits``: request ids need to be unique, not unpredictable, and
``uuid.uuid4`` would make a ``getrandom`` system call on every request.

Model exceptions never reach the client as text: a traceback or message may hold
paths, values or code. The data plane logs the exception with the request id and
answers a generic message that names the id. ``ValueError`` and the input errors of
onnxruntime, XGBoost and LightGBM mean the model refused what passed validation (400);
anything else, ``KeyError`` and ``TypeError`` included, is a fault in the model or its
handler (500). A custom handler that wants the client to read its reason raises
``kubeserve_runtime.errors.InvalidInput``, whose message is passed on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Executor
from random import getrandbits
from time import perf_counter, time
from typing import Any

import numpy as np

from kubeserve_runtime import __version__, contract
from kubeserve_runtime.batching import AdaptiveBatcher, DirectScheduler, Scheduler
from kubeserve_runtime.datatypes import as_bytes_array, datatype_of, from_json
from kubeserve_runtime.errors import (
    InferenceFailed,
    InvalidInput,
    ModelNotFound,
    NotReady,
    ServingError,
)
from kubeserve_runtime.feedback import FeedbackService
from kubeserve_runtime.identity import current_subject
from kubeserve_runtime.logs import RequestLog
from kubeserve_runtime.metrics import DriftMonitor, ReferenceProfile, RuntimeMetrics
from kubeserve_runtime.models import Model, load_model
from kubeserve_runtime.payloadlog.event import Origin, Record
from kubeserve_runtime.payloadlog.logger import PayloadLogger, pod_source
from kubeserve_runtime.payloads import InferRequest, InferResponse, RequestedOutput, Tensor
from kubeserve_runtime.schema import InputValidator, TensorSpec
from kubeserve_runtime.settings import RuntimeSettings

SERVER_NAME = "kubeserve"
EXTENSIONS = ["binary_tensor_data"]
_INPUT_ERROR_NAMES = frozenset({"InvalidArgument", "XGBoostError", "LightGBMError"})
log = logging.getLogger(__name__)

Feed = dict[str, np.ndarray[Any, Any]]


class DataPlane:
    """Serves one model; shared by every transport."""

    def __init__(
        self, settings: RuntimeSettings, metrics: RuntimeMetrics, executor: Executor
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.name = settings.model_name
        self.version = settings.model_version
        self.log = RequestLog(settings.log_sample_rate)
        self._executor = executor
        self._model: Model | None = None
        self._validator: InputValidator | None = None
        self._scheduler: Scheduler | None = None
        self._drift: DriftMonitor | None = None
        self._drift_input: str | None = None
        self._input_specs: list[TensorSpec] = []
        self.draining = False
        self.feedback = FeedbackService.from_settings(settings, metrics.registry)
        self.payloads = payload_logger(settings, metrics)

    # -- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model in a worker thread, then build validator, scheduler and drift."""
        started = perf_counter()
        loop = asyncio.get_running_loop()
        s = self.settings
        model = await loop.run_in_executor(self._executor, load_model, s.model_dir, s.model_format)
        profile = await loop.run_in_executor(self._executor, ReferenceProfile.find, s.model_dir)
        self.metrics.model_loaded(model.platform, perf_counter() - started)
        self._validator = InputValidator(model.inputs, s.input_schema, model.positional)
        if s.input_schema is not None:
            self._input_specs = [
                TensorSpec(i.name, i.datatype, tuple(i.shape) if i.shape else (-1,))
                for i in s.input_schema.inputs
            ]
        else:
            self._input_specs = list(model.inputs)
        inline_max_s = s.inline_inference_max_ms / 1000.0
        if s.max_batch_size > 1 and model.batchable:
            self._scheduler = AdaptiveBatcher(
                model.predict,
                self._executor,
                max_batch_size=s.max_batch_size,
                max_latency_s=s.max_latency_ms / 1000.0,
                max_queue=s.max_queue,
                workers=s.inference_threads,
                observe=self.metrics.observe_batch,
                inline_max_s=inline_max_s,
            )
        else:
            self._scheduler = DirectScheduler(
                model.predict,
                self._executor,
                s.max_queue,
                self.metrics.observe_batch,
                inline_max_s=inline_max_s,
            )
        if profile is not None:
            self._drift = DriftMonitor(
                profile, self.metrics.registry, self.name, self.version or ""
            )
            self._drift_input = profile.input
        self._model = model

    @property
    def ready(self) -> bool:
        """Whether the model is loaded and the server is not draining."""
        return self._model is not None and not self.draining

    @property
    def pending(self) -> int:
        """Requests queued or running in the scheduler."""
        return self._scheduler.pending if self._scheduler else 0

    async def close(self) -> None:
        """Finish queued inference, for at most ``drain_timeout_seconds``."""
        if self._scheduler is not None:
            await self._scheduler.close(self.settings.drain_timeout_seconds)
        if self.payloads is not None:
            await asyncio.to_thread(self.payloads.close)

    # -- metadata --------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        """Return the OIP server metadata."""
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def resolve(self, name: str, version: str | None = None) -> None:
        """Raise ModelNotFound unless this server serves ``name`` (and ``version``)."""
        if name != self.name:
            raise ModelNotFound(
                f"model {name!r} is not served here; this server serves {self.name!r}"
            )
        if version is not None and version != self.version:
            have = f"version {self.version!r}" if self.version else "no versions"
            raise ModelNotFound(f"model {name!r} version {version!r} not found ({have})")

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Return readiness of a served model (raises ModelNotFound for others)."""
        self.resolve(name, version)
        return self.ready

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Return the OIP model metadata."""
        self.resolve(name, version)
        model = self._require_model()
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": model.platform,
            "inputs": [s.as_metadata() for s in self._input_specs],
            "outputs": [s.as_metadata() for s in model.outputs],
        }

    def _require_model(self) -> Model:
        """Return the loaded model or raise NotReady."""
        if self._model is None:
            raise NotReady(f"model {self.name!r} is still loading")
        return self._model

    def record(
        self, protocol: str, status: int, seconds: float, counted: bool, by_header: bool = False
    ) -> bool:
        """Count one finished request; return whether to write its access log line
        (``by_header``: it carried :data:`~kubeserve_runtime.contract.ROUTED_HEADER`)."""
        if counted:
            self.metrics.observe_request(protocol, status, seconds, by_header)
        return self.log.sampled(status) and (counted or status >= 400)

    def access(
        self,
        protocol: str,
        method: str,
        status: int,
        seconds: float,
        client: str | None,
        path: str | None = None,
    ) -> None:
        """Write the access log line of a request that ``record`` chose to log.

        The line names the authenticated subject (``identity.current_subject``): call it
        from the request's own task.
        """
        fields: dict[str, Any] = {"method": method}
        if path is not None:
            fields["path"] = path
        fields["status"] = status
        fields["duration_ms"] = round(seconds * 1000, 3)
        fields["protocol"] = protocol
        fields["model"] = self.name
        fields["client"] = client
        fields["subject"] = current_subject()
        self.log.access(fields)

    # -- inference -------------------------------------------------------------------

    def _model_failure(self, exc: Exception, request_id: str) -> ServingError:
        """Log a model exception with the request id; return what the client is told."""
        refused = isinstance(exc, ValueError) or type(exc).__name__ in _INPUT_ERROR_NAMES
        status = 400 if refused else 500
        log.error(
            "the model raised %s",
            type(exc).__name__,
            exc_info=exc,
            extra={"fields": {"model": self.name, "request_id": request_id, "status": status}},
        )
        where = f"request id {request_id}; the server log has the details"
        if refused:
            return InvalidInput(f"the model could not process this input ({where})")
        return InferenceFailed(f"the model failed on this request ({where})")

    async def infer(
        self, name: str, version: str | None, request: InferRequest, protocol: str = "v2"
    ) -> InferResponse:
        """Validate, schedule and run one inference request (``protocol``: v1, v2 or grpc,
        for payload logs)."""
        payloads = self.payloads
        received = time() if payloads is not None else 0.0
        self.resolve(name, version)
        self._require_model()
        assert self._validator is not None
        assert self._scheduler is not None
        feed = self._validator.validate(request.inputs)
        request_id = request.id or new_request_id()
        try:
            out, timing = await self._scheduler.submit(feed)
            _check_outputs(out, request.outputs)
            outputs = _select_outputs(out, request.outputs)
        except ServingError:  # the scheduler's, the client's, or a handler's on purpose
            raise
        except Exception as exc:
            raise self._model_failure(exc, request_id) from exc
        self.metrics.queue.observe(timing.queue_s)
        if self._drift is not None:
            key = self._drift_input if self._drift_input in feed else next(iter(feed))
            self._drift.observe(feed[key])
        response = InferResponse(
            model_name=self.name,
            model_version=self.version,
            id=request_id,
            outputs=outputs,
        )
        if self.feedback is not None:
            token = self.feedback.issue(outputs)
            if token is not None:
                response.parameters[contract.FEEDBACK_PARAMETER] = token
        if self.log.sampled(200):
            self.log.prediction(self.name, response.id, request.inputs, outputs)
        if payloads is not None and payloads.sampled():
            payloads.log(
                Record(
                    request_id,
                    received,
                    time(),
                    protocol,
                    request.inputs,
                    outputs,
                    request.subject or current_subject(),
                )
            )
        return response

    async def predict_v1(self, name: str, body: Any) -> tuple[dict[str, Any], str | None]:
        """Answer a KServe V1 ``:predict`` body (``instances`` or ``inputs``).

        Returns the response body and the feedback token (None when feedback is off).
        """
        self.resolve(name)
        self._require_model()
        if not isinstance(body, dict):
            raise InvalidInput("the V1 body must be a JSON object with an 'instances' list")
        instances = body.get("instances", body.get("inputs"))
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("'instances' must be a non-empty list")
        tensors = self._v1_tensors(instances)
        response = await self.infer(name, None, InferRequest(inputs=tensors), "v1")
        token = response.parameters.get(contract.FEEDBACK_PARAMETER)
        values = [_plain(t) for t in response.outputs]
        if len(values) == 1:
            return {"predictions": values[0]}, token
        names = [t.name for t in response.outputs]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        return {"predictions": rows}, token

    async def submit_feedback(self, name: str, body: Any) -> dict[str, Any]:
        """Score a feedback body for a served model, in a worker thread.

        Verifying costs tens of microseconds per item (up to 10,000 per request), so it
        runs off the event loop that serves inference. Feedback off (no key) is a 404
        naming why: the model takes no feedback, which is the client's to know, not a
        server fault."""
        self.resolve(name)
        if self.feedback is None:
            raise ModelNotFound(
                f"feedback is off for model {name!r}: the runtime has no feedback key "
                "(spec.feedback in the InferenceService)"
            )
        return await asyncio.to_thread(self.feedback.submit, name, body)

    def _v1_tensors(self, instances: list[Any]) -> list[Tensor]:
        """Turn V1 instances (rows, or dicts of named columns) into tensors."""
        specs = {s.name: s for s in self._input_specs}
        if all(isinstance(i, dict) for i in instances):
            keys = list(instances[0])
            if any(list(i) != keys for i in instances):
                raise InvalidInput("every instance must have the same keys")
            return [_v1_tensor(k, [i[k] for i in instances], specs.get(k)) for k in keys]
        spec = self._input_specs[0] if len(self._input_specs) == 1 else None
        return [_v1_tensor(spec.name if spec else "input-0", instances, spec)]


def payload_logger(settings: RuntimeSettings, metrics: RuntimeMetrics) -> PayloadLogger | None:
    """The payload logger the settings ask for (its sender threads start now), or None."""
    if settings.payload_logger is None:
        return None
    origin = Origin(
        isvc=settings.model_name,
        namespace=settings.namespace,
        variant=settings.component,
        revision=settings.model_version or "",
        source=pod_source(),
    )
    return PayloadLogger(settings.payload_logger, origin, settings.model_name, metrics.registry)


def new_request_id() -> str:
    """Return a random version-4 UUID string for a request that came without an id."""
    return str(uuid.UUID(int=getrandbits(128), version=4))


def _v1_tensor(name: str, values: list[Any], spec: TensorSpec | None) -> Tensor:
    """Convert V1 values into a tensor of the spec's datatype (the values' own if none)."""
    data = from_json(name, values, spec.datatype if spec is not None else None)
    return Tensor(name=name, datatype=datatype_of(data), data=data)


def _plain(tensor: Tensor) -> list[Any]:
    """Return a tensor as nested Python lists (BYTES decoded as UTF-8)."""
    if tensor.datatype == "BYTES":
        decoded = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
        return list(decoded(tensor.data).tolist()) if tensor.data.size else []
    return list(tensor.data.tolist()) if tensor.data.ndim else [tensor.data.item()]


def _check_outputs(out: Feed, requested: list[RequestedOutput] | None) -> None:
    """Raise InvalidInput (the client's fault) when the request names unknown outputs."""
    missing = [r.name for r in requested or () if r.name not in out]
    if missing:
        known = ", ".join(repr(n) for n in out)
        raise InvalidInput(
            f"unknown output(s) {', '.join(map(repr, missing))}; outputs are {known}"
        )


def _select_outputs(out: Feed, requested: list[RequestedOutput] | None) -> list[Tensor]:
    """Return the model outputs as tensors, limited to the requested ones when given.

    A failure here is the model's: it returned something with no OIP datatype.
    """
    if requested:
        chosen = [(r.name, out[r.name], r.parameters) for r in requested]
    else:
        chosen = [(n, a, {}) for n, a in out.items()]
    tensors = []
    for name, array, params in chosen:
        if array.dtype.kind in "USO":
            array = as_bytes_array(array)
        try:
            datatype = datatype_of(array)
        except InvalidInput as exc:
            raise TypeError(f"output {name!r}: {exc.message}") from exc
        tensors.append(Tensor(name=name, datatype=datatype, data=array, parameters=params))
    return tensors
