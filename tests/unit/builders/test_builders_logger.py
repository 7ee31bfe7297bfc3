"""spec.predictor.logger: validation with clear messages, inheritance by variants, and
the runtime environment it renders (which the runtime's own settings parse back)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve.api.v1alpha1 import InferenceService, Logger, variant_predictor
from kubeserve.builders.payloadlog import PAYLOAD_HEADERS_DIR, logger_parts, runtime_logger
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.revision import revision_hash
from kubeserve_runtime import contract
from kubeserve_runtime.payloadlog.config import LoggerConfig

SetPath = Callable[[dict[str, Any], str, Any], dict[str, Any]]
LOGGER = "spec.predictor.logger"


def refusal(obj: dict[str, Any]) -> str:
    """The validation error text of an object that must be refused."""
    with pytest.raises(ValidationError) as caught:
        InferenceService.model_validate(obj)
    return str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{LOGGER}.sampleRate", 1.5, "less than or equal to 1"),
        (f"{LOGGER}.sampleRate", -0.1, "greater than or equal to 0"),
        (f"{LOGGER}.mode", "both", "Input should be 'all', 'request' or 'response'"),
        (f"{LOGGER}.sinks", [], "logger.sinks needs at least one sink: http, s3 or stdout"),
        (LOGGER, {"mode": "all"}, "logger.sinks needs at least one sink"),
        (f"{LOGGER}.sinks.2", {}, "each logger sink sets exactly one of http, s3 or stdout"),
        (
            f"{LOGGER}.sinks.2",
            {"stdout": {}, "http": {"url": "http://x"}},
            "each logger sink sets exactly one of http, s3 or stdout",
        ),
        (f"{LOGGER}.sinks.0.http.url", "ftp://logs", "String should match pattern"),
        (f"{LOGGER}.sinks.0.http.batchSize", 0, "greater than or equal to 1"),
        (f"{LOGGER}.sinks.1.s3.uri", "s3:/logs", "String should match pattern"),
        (f"{LOGGER}.sinks.1.s3.serverSideEncryption", "AES256", "kmsKeyId needs"),
        (f"{LOGGER}.sinks.2.stdout", {"color": True}, "Extra inputs are not permitted"),
        ("spec.variants.0.predictor.logger", {"sinks": [{"stdout": {}}]}, "logger needs model"),
    ],
)
def test_bad_loggers_are_refused_with_a_clear_message(
    path: str, value: Any, expected: str, full_isvc: dict[str, Any], set_path: SetPath
) -> None:
    """Each broken rule is refused, and the message names it."""
    assert expected in refusal(set_path(full_isvc, path, value))


def test_rendered_logger_is_what_the_runtime_reads(full_isvc: dict[str, Any]) -> None:
    """The env renders the API's logger for the runtime: the header Secret becomes the
    directory it is mounted at, everything else passes through and parses back."""
    logger = InferenceService.model_validate(full_isvc).spec.predictor.logger
    assert logger is not None
    parts = logger_parts(logger, "ml", "predictor")
    assert parts.env[contract.ENV_NAMESPACE] == "ml"
    assert parts.env[contract.ENV_COMPONENT] == "predictor"
    runtime = LoggerConfig.model_validate_json(parts.env[contract.ENV_PAYLOAD_LOGGER])
    assert runtime.sample_rate == 0.5
    assert runtime.redact == ["ssn"]
    http, s3, stdout = runtime.sinks
    assert http.http is not None
    assert http.http.batch_size == 10
    assert str(http.http.headers_dir) == f"{PAYLOAD_HEADERS_DIR}/0"
    assert s3.s3 is not None
    assert (s3.s3.server_side_encryption, s3.s3.kms_key_id) == ("aws:kms", "alias/payload-logs")
    assert s3.s3.flush_interval_seconds == 30
    assert stdout.stdout is not None
    assert parts.volumes == [
        {"name": "payload-headers-0", "secret": {"secretName": "log-headers", "defaultMode": 288}}
    ]
    assert parts.mounts == [
        {
            "name": "payload-headers-0",
            "mountPath": f"{PAYLOAD_HEADERS_DIR}/0",
            "readOnly": True,
        }
    ]


def test_no_logger_renders_nothing() -> None:
    """Without a logger the pod is exactly what it was before the feature existed."""
    parts = logger_parts(None, "ml", "predictor")
    assert (parts.env, parts.volumes, parts.mounts) == ({}, [], [])


def test_only_http_sinks_with_a_secret_get_a_mount() -> None:
    """Volume names follow the sink's index, so two header Secrets never collide."""
    logger = Logger.model_validate(
        {
            "sinks": [
                {"http": {"url": "http://a"}},
                {"http": {"url": "http://b", "headersSecretRef": {"name": "b-key"}}},
            ]
        }
    )
    parts = logger_parts(logger, "ml", "b")
    assert [v["name"] for v in parts.volumes] == ["payload-headers-1"]
    assert "headersDir" not in runtime_logger(logger)["sinks"][0]["http"]
    assert runtime_logger(logger)["sinks"][1]["http"]["headersDir"].endswith("/1")


def test_variants_inherit_the_main_logger_unless_they_set_their_own(
    full_isvc: dict[str, Any],
) -> None:
    """The model variant inherits (and its revision follows the inherited logger); the
    custom-container variant does not; a variant's own logger wins."""
    spec = full_isvc["spec"]
    variants = {v.name: v.predictor for v in Policy.from_spec(spec).variants}
    assert variants["shadow"]["logger"] == spec["predictor"]["logger"]
    assert "logger" not in variants["b"]
    own: dict[str, Any] = {"sinks": [{"stdout": {}}]}
    shadow = {**spec["variants"][1]["predictor"], "logger": own}
    assert variant_predictor(shadow, spec["predictor"])["logger"] == own
    changed = json.loads(json.dumps(spec["predictor"]))
    changed["logger"]["sampleRate"] = 0.1
    before = revision_hash(variant_predictor(spec["variants"][1]["predictor"], spec["predictor"]))
    after = revision_hash(variant_predictor(spec["variants"][1]["predictor"], changed))
    assert before != after
