"""The OpenAPI 3.0 description of the REST API, served at /openapi.json and /v2/openapi.json.

Written out here rather than generated, because the wire format (the binary extension,
the V1 shapes) is fixed by the protocols, not by Python types. Tests run schemathesis
against it, so responses must match what is described. The V1 ``:explain`` route is
left out: it serves nothing (always 501, this runtime has no explainer). The feedback
route is described (a kubeserve extension; 404 when the runtime has no feedback key).
"""

from __future__ import annotations

from typing import Any

from kubeserve_runtime import __version__
from kubeserve_runtime.datatypes import DATATYPES

_ERRORS = {
    "400": "Malformed request or input that does not match the model",
    "401": "Missing or invalid bearer token",
    "404": "Unknown model or version (feedback: the runtime has no feedback key)",
    "408": "Headers or body did not arrive within the read timeout",
    "413": "Request body over the size limit",
    "415": "Content-Encoding other than gzip, deflate or identity",
    "431": "Request headers over the size or count limit",
    "503": "Model loading, server draining, queue or in-flight caps full (see Retry-After)",
    "403": "Feedback: a token whose signature matches no key of this service (forged)",
    "409": "Feedback: a token that already has this kind of feedback here (duplicate)",
    "410": "Feedback: an expired token",
}


def _ref(name: str) -> dict[str, str]:
    """Return a $ref to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a JSON content block."""
    return {"application/json": {"schema": schema}}


def _responses(ok: str, codes: tuple[str, ...]) -> dict[str, Any]:
    """Return the responses of an operation: 200 with ``ok`` plus the listed errors."""
    out: dict[str, Any] = {"200": {"description": "OK", "content": _json(_ref(ok))}}
    for code in codes:
        out[code] = {"description": _ERRORS[code], "content": _json(_ref("Error"))}
    return out


def _params(model: str, *names: str) -> list[dict[str, Any]]:
    """Return path parameters (``name`` carries the served model as its example)."""
    return [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            **({"example": model} if n == "name" else {}),
        }
        for n in names
    ]


def _schemas() -> dict[str, Any]:
    """Return the component schemas."""
    params = {"type": "object", "additionalProperties": True}
    shape = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    datatype = {"type": "string", "enum": list(DATATYPES)}
    tensor_meta = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
        "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
        "ModelReady": {
            "type": "object",
            "required": ["name", "ready"],
            "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
        },
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor_meta},
                "outputs": {"type": "array", "items": tensor_meta},
            },
        },
        "RequestInput": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "shape": shape,
                "datatype": datatype,
                "parameters": params,
                "data": {
                    "description": "Tensor values, flat or nested, row-major; absent "
                    "when parameters.binary_data_size is set."
                },
            },
        },
        "RequestOutput": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": params},
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": params,
                "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
                "outputs": {"type": "array", "items": _ref("RequestOutput")},
            },
        },
        "ResponseOutput": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string"},
                "shape": shape,
                "datatype": {"type": "string"},
                "parameters": params,
                "data": {"type": "array"},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "id", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": params,
                "outputs": {"type": "array", "items": _ref("ResponseOutput")},
            },
        },
        "FeedbackItem": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {"type": "string", "description": "A response's feedback token"},
                "truth": {"description": "One true value per predicted value (list or scalar)"},
                "reward": {"type": "number"},
            },
        },
        "FeedbackAccepted": {
            "type": "object",
            "required": ["accepted"],
            "properties": {"accepted": {"type": "integer", "minimum": 1}},
        },
        "V1Models": {
            "type": "object",
            "required": ["models"],
            "properties": {"models": {"type": "array", "items": {"type": "string"}}},
        },
        "V1PredictRequest": {
            "type": "object",
            "properties": {
                "instances": {"type": "array", "minItems": 1},
                "inputs": {"type": "array", "minItems": 1},
            },
        },
        "V1PredictResponse": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array"}},
        },
    }


def openapi_document(model_name: str) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document of the REST API for the served model."""
    model = ("401", "404", "503")
    infer_codes = ("400", "401", "404", "408", "413", "415", "431", "503")
    infer_body = {
        "required": True,
        "content": {
            **_json(_ref("InferRequest")),
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Binary tensor extension; needs Inference-Header-Content-Length",
            },
        },
    }
    infer = {
        "summary": "Run inference (Open Inference Protocol V2)",
        "requestBody": infer_body,
        "responses": _responses("InferResponse", infer_codes),
    }
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Server alive", "responses": _responses("Status", ())}},
        "/v2/health/live": {"get": {"summary": "Liveness", "responses": _responses("Live", ())}},
        "/v2/health/ready": {
            "get": {"summary": "Readiness", "responses": _responses("Ready", ("503",))}
        },
        "/v2": {
            "get": {
                "summary": "Server metadata",
                "responses": _responses("ServerMetadata", ("401",)),
            }
        },
        "/v2/models/{name}": {
            "get": {
                "summary": "Model metadata",
                "parameters": _params(model_name, "name"),
                "responses": _responses("ModelMetadata", model),
            }
        },
        "/v2/models/{name}/versions/{version}": {
            "get": {
                "summary": "Model version metadata",
                "parameters": _params(model_name, "name", "version"),
                "responses": _responses("ModelMetadata", model),
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                "summary": "Model readiness",
                "parameters": _params(model_name, "name"),
                "responses": _responses("ModelReady", model),
            }
        },
        "/v2/models/{name}/versions/{version}/ready": {
            "get": {
                "summary": "Model version readiness",
                "parameters": _params(model_name, "name", "version"),
                "responses": _responses("ModelReady", model),
            }
        },
        "/v2/models/{name}/infer": {"post": {**infer, "parameters": _params(model_name, "name")}},
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer, "parameters": _params(model_name, "name", "version")}
        },
        "/v2/models/{name}/feedback": {
            "post": {
                "summary": "Ground-truth feedback for earlier answers (kubeserve extension); "
                "all items or none are recorded",
                "parameters": _params(model_name, "name"),
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "oneOf": [
                                _ref("FeedbackItem"),
                                {"type": "array", "items": _ref("FeedbackItem")},
                            ]
                        }
                    ),
                },
                "responses": _responses(
                    "FeedbackAccepted",
                    (
                        "400",
                        "401",
                        "403",
                        "404",
                        "408",
                        "409",
                        "410",
                        "413",
                        "415",
                        "431",
                        "503",
                    ),
                ),
            }
        },
        "/v1/models": {
            "get": {"summary": "List models (V1)", "responses": _responses("V1Models", ("401",))}
        },
        "/v1/models/{name}": {
            "get": {
                "summary": "Model status (V1)",
                "parameters": _params(model_name, "name"),
                "responses": _responses("ModelReady", model),
            }
        },
        "/v1/models/{name}:predict": {
            "post": {
                "summary": "Predict (KServe V1)",
                "parameters": _params(model_name, "name"),
                "requestBody": {"required": True, "content": _json(_ref("V1PredictRequest"))},
                "responses": _responses("V1PredictResponse", infer_codes),
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "kubeserve runtime", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
