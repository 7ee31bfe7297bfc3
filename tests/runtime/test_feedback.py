"""Ground-truth feedback across real runtime processes sharing one HMAC key.

Replica A (revision r1, variant predictor) answers predictions over V1, V2 JSON, V2
binary and gRPC; replica B (revision r2, variant b, same key, 1 s token lifetime) scores
A's tokens. The confusion matrix B exports is compared with one the test computes from
the answers and the truths it sent; forged, expired, duplicated and malformed items are
refused with the reason's status and counted. A regressor pair does the same for
absolute and squared errors, and rewards.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import jwt
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression
from tritonclient.grpc import service_pb2, service_pb2_grpc

from kubeserve_runtime import contract
from kubeserve_runtime.testing import RuntimeProcess, wait_until

Array = np.ndarray[Any, Any]
HEADER = contract.FEEDBACK_HEADER
PARAMETER = contract.FEEDBACK_PARAMETER


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key every replica of the service shares (a Secret's file in a pod)."""
    path = tmp_path_factory.mktemp("feedback") / "key"
    path.write_text(f"# feedback key\n{secrets.token_urlsafe(32)}\n")
    return path


def _replica(
    model_dir: Path, name: str, revision: str, variant: str, key: Path, *extra: str
) -> RuntimeProcess:
    return RuntimeProcess(
        model_dir,
        name,
        "--model-version",
        revision,
        "--component",
        variant,
        "--feedback-key-file",
        str(key),
        *extra,
    )


@pytest.fixture(scope="module")
def replica_a(sklearn_dir: Path, key_file: Path) -> Iterator[RuntimeProcess]:
    """The replica that answers predictions."""
    with _replica(sklearn_dir, "iris", "r1", "predictor", key_file) as server:
        yield server


@pytest.fixture(scope="module")
def replica_b(sklearn_dir: Path, key_file: Path) -> Iterator[RuntimeProcess]:
    """Another replica (other revision and variant) with the same key; its tokens last 1 s."""
    with _replica(
        sklearn_dir, "iris", "r2", "b", key_file, "--feedback-token-ttl-seconds", "1"
    ) as server:
        yield server


def _metrics(server: RuntimeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (sample name, sorted labels)."""
    text = httpx.get(server.metrics_url).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _confusion(server: RuntimeProcess, revision: str, variant: str) -> Counter[tuple[str, str]]:
    """The confusion matrix a replica exports for one revision and variant."""
    out: Counter[tuple[str, str]] = Counter()
    for (name, labels), value in _metrics(server).items():
        got = dict(labels)
        if name == "kubeserve_feedback_total" and (got["version"], got["variant"]) == (
            revision,
            variant,
        ):
            assert got["model"] == "iris"
            out[(got["predicted"], got["actual"])] += int(value)
    return out


def _rejected(server: RuntimeProcess, reason: str) -> float:
    key = ("kubeserve_feedback_rejected_total", (("model", "iris"), ("reason", reason)))
    return _metrics(server).get(key, 0.0)


def _feedback(server: RuntimeProcess, body: Any, model: str = "iris") -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/feedback", json=body)


def _predict_every_protocol(server: RuntimeProcess, rows: Array) -> list[tuple[str, list[int]]]:
    """Predict four slices of ``rows``, one per protocol; return (token, predicted) each."""
    parts = np.array_split(rows, 4)
    answers: list[tuple[str, list[int]]] = []
    # KServe V1: the token is a response header
    v1 = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": parts[0].tolist()})
    assert v1.status_code == 200, v1.text
    answers.append((v1.headers[HEADER], v1.json()["predictions"]))
    # V2 JSON: header and response parameter, the same token
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": list(parts[1].shape),
                "datatype": "FP64",
                "data": parts[1].tolist(),
            }
        ]
    }
    v2 = httpx.post(f"{server.url}/v2/models/iris/infer", json=body)
    assert v2.status_code == 200, v2.text
    doc = v2.json()
    assert doc["parameters"] == {PARAMETER: v2.headers[HEADER]}
    answers.append((v2.headers[HEADER], doc["outputs"][0]["data"]))
    # V2 binary extension, parsed by tritonclient
    http = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    tensor = httpclient.InferInput("x", list(parts[2].shape), "FP64")
    tensor.set_data_from_numpy(parts[2], binary_data=True)
    wanted = [httpclient.InferRequestedOutput("output-0", binary_data=True)]
    result = http.infer("iris", [tensor], outputs=wanted)
    http.close()
    assert "data" not in result.get_response()["outputs"][0]  # the answer really was binary
    answers.append(
        (result.get_response()["parameters"][PARAMETER], result.as_numpy("output-0").tolist())
    )
    # gRPC: the response parameter and the initial metadata
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="iris")
        request.inputs.add(name="x", datatype="FP64", shape=list(parts[3].shape))
        request.raw_input_contents.append(parts[3].astype(np.float64).tobytes())
        response, call = stub.ModelInfer.with_call(request)
    token = response.parameters[PARAMETER].string_param
    assert dict(call.initial_metadata())[HEADER] == token
    predicted = np.frombuffer(response.raw_output_contents[0], dtype=np.int64).tolist()
    answers.append((token, predicted))
    return answers


def test_tokens_from_every_protocol_scored_on_another_replica(
    replica_a: RuntimeProcess, replica_b: RuntimeProcess, iris: tuple[Array, Array]
) -> None:
    """A's tokens scored on B; B's confusion matrix equals the one computed here."""
    features, labels = iris
    picked = np.arange(0, 150, 5)  # 30 rows, every class
    rows, truths = features[picked], labels[picked].astype(int)
    truths[::4] = (truths[::4] + 1) % 3  # some wrong truths: off-diagonal counts too
    answers = _predict_every_protocol(replica_a, rows)
    expected: Counter[tuple[str, str]] = Counter()
    items, start = [], 0
    for token, predicted in answers:
        truth = truths[start : start + len(predicted)].tolist()
        start += len(predicted)
        expected.update((str(p), str(t)) for p, t in zip(predicted, truth, strict=True))
        items.append({"token": token, "truth": truth})
    assert start == len(rows)
    # REST, two items then two more; the last two through the gRPC extension
    first = _feedback(replica_b, items[:2])
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2}
    with grpc.insecure_channel(replica_b.grpc_target) as channel:
        submit = channel.unary_unary(contract.FEEDBACK_GRPC_METHOD)
        answer = submit(orjson.dumps({"model_name": "iris", "items": items[2:]}))
    assert orjson.loads(answer) == {"accepted": 2}
    assert _confusion(replica_b, "r1", "predictor") == expected
    assert _confusion(replica_a, "r1", "predictor") == Counter()  # scored on B only
    # the diagonal counter (what accuracy, precision and recall read) equals the diagonal
    diagonal = Counter({p: n for (p, a), n in expected.items() if p == a})
    exported: Counter[str] = Counter()
    for (name, sample_labels), value in _metrics(replica_b).items():
        got = dict(sample_labels)
        if name == "kubeserve_feedback_correct_total" and got["version"] == "r1":
            exported[got["class"]] += int(value)
    assert exported == diagonal
    assert 0 < sum(diagonal.values()) < sum(expected.values())


def _tamper(token: str) -> str:
    """The token with its predicted values changed and the old signature kept."""
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["p"] = [2 for _ in claims["p"]]
    forged = jwt.utils.base64url_encode(orjson.dumps(claims)).decode()
    assert forged != payload
    return f"{header}.{forged}.{signature}"


def test_forged_expired_duplicated_and_malformed_refused(
    replica_a: RuntimeProcess, replica_b: RuntimeProcess
) -> None:
    """Each bad item gets its status and reason, is counted, and nothing is recorded."""
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    token = httpx.post(f"{replica_a.url}/v1/models/iris:predict", json=row).headers[HEADER]
    before = _confusion(replica_b, "r1", "predictor")
    other_key = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        secrets.token_bytes(32),
        algorithm="HS256",
    )
    cases = [
        ({"token": _tamper(token), "truth": 0}, 403, "forged"),
        ({"token": other_key, "truth": 0}, 403, "forged"),
        ({"token": "not.a.token", "truth": 0}, 400, "malformed"),
        ({"token": token}, 400, "malformed"),
        ({"token": token, "truth": [0, 1]}, 400, "bad_truth"),
        ({"token": token, "truth": 0.5}, 400, "bad_truth"),
        ({"token": token, "truth": 0, "extra": 1}, 400, "malformed"),
    ]
    for item, status, reason in cases:
        counted = _rejected(replica_b, reason)
        answer = _feedback(replica_b, item)
        assert answer.status_code == status, (item, answer.text)
        assert answer.json()["rejected"] == [
            {"index": 0, "reason": reason, "error": answer.json()["rejected"][0]["error"]}
        ]
        assert reason in answer.json()["error"]
        assert _rejected(replica_b, reason) == counted + 1
    # a token for another model: the path names a model this server does not serve
    assert _feedback(replica_b, {"token": token, "truth": 0}, model="other").status_code == 404
    # all or nothing: one good item beside a bad one records nothing
    mixed = _feedback(replica_b, [{"token": token, "truth": 0}, {"token": "x", "truth": 0}])
    assert mixed.status_code == 400
    assert [r["index"] for r in mixed.json()["rejected"]] == [1]
    assert _confusion(replica_b, "r1", "predictor") == before
    # the same good item alone is accepted once, then refused as a duplicate
    assert _feedback(replica_b, {"token": token, "truth": 0}).status_code == 200
    duplicate = _feedback(replica_b, {"token": token, "truth": 0})
    assert duplicate.status_code == 409
    assert duplicate.json()["rejected"][0]["reason"] == "duplicate"
    # a reward for the same token is a different kind of feedback: accepted once
    assert _feedback(replica_b, {"token": token, "reward": 1.0}).status_code == 200
    # twice in one request: the second is the duplicate
    fresh = httpx.post(f"{replica_a.url}/v1/models/iris:predict", json=row).headers[HEADER]
    twice = _feedback(replica_b, [{"token": fresh, "truth": 0}, {"token": fresh, "truth": 0}])
    assert twice.status_code == 409
    assert [r["index"] for r in twice.json()["rejected"]] == [1]
    # over gRPC, a duplicate is ALREADY_EXISTS naming the reason
    with grpc.insecure_channel(replica_b.grpc_target) as channel:
        submit = channel.unary_unary(contract.FEEDBACK_GRPC_METHOD)
        with pytest.raises(grpc.RpcError) as refused:
            submit(orjson.dumps({"model_name": "iris", "items": [{"token": token, "truth": 0}]}))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "duplicate" in str(refused.value.details())


def test_expired_token_refused(replica_a: RuntimeProcess, replica_b: RuntimeProcess) -> None:
    """B's tokens live 1 s: once that has passed, A refuses them with 410."""
    answer = httpx.post(
        f"{replica_b.url}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
    )
    token = answer.headers[HEADER]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    wait_until(lambda: time.time() > expires, "the token's expiry has passed", timeout=30)
    counted = _rejected(replica_a, "expired")
    refused = _feedback(replica_a, {"token": token, "truth": 0})
    assert refused.status_code == 410
    assert refused.json()["rejected"][0]["reason"] == "expired"
    assert _rejected(replica_a, "expired") == counted + 1


def test_feedback_off_without_a_key(sklearn_server: RuntimeProcess) -> None:
    """No key file: no token on responses, and the route says why feedback is off."""
    answer = httpx.post(
        f"{sklearn_server.url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}
    )
    assert HEADER not in answer.headers
    refused = _feedback(sklearn_server, {"token": "x", "truth": 0})
    assert refused.status_code == 404
    assert "feedback is off" in refused.json()["error"]


@pytest.fixture(scope="module")
def regressor(
    tmp_path_factory: pytest.TempPathFactory, iris: tuple[Array, Array]
) -> tuple[Path, LinearRegression]:
    """Petal width from the other three iris features."""
    features = iris[0]
    model = LinearRegression().fit(features[:, :3], features[:, 3])
    path = tmp_path_factory.mktemp("regressor")
    joblib.dump(model, path / "model.joblib")
    return path, model


def test_regression_errors_and_rewards_scored_on_another_replica(
    regressor: tuple[Path, LinearRegression], key_file: Path, iris: tuple[Array, Array]
) -> None:
    """Absolute and squared error sums and counts, and rewards, equal the test's own."""
    model_dir, _ = regressor
    features = iris[0]
    with (
        _replica(model_dir, "petal", "r1", "predictor", key_file) as issuer,
        _replica(model_dir, "petal", "r2", "predictor", key_file) as scorer,
    ):
        errors: list[float] = []
        items = []
        for start in range(0, 40, 8):
            rows = features[start : start + 8, :3]
            body = {
                "inputs": [
                    {"name": "x", "shape": [8, 3], "datatype": "FP64", "data": rows.tolist()}
                ]
            }
            answer = httpx.post(f"{issuer.url}/v2/models/petal/infer", json=body).json()
            predicted = answer["outputs"][0]["data"]
            truth = features[start : start + 8, 3].tolist()
            errors.extend(p - t for p, t in zip(predicted, truth, strict=True))
            items.append({"token": answer["parameters"][PARAMETER], "truth": truth})
            items.append({"token": answer["parameters"][PARAMETER], "reward": float(start)})
        accepted = httpx.post(f"{scorer.url}/v2/models/petal/feedback", json=items)
        assert accepted.status_code == 200, accepted.text
        samples = {
            name: value
            for (name, labels), value in _metrics(scorer).items()
            if dict(labels).get("version") == "r1" and name.startswith("kubeserve_feedback_")
        }
    error = np.asarray(errors)
    assert samples["kubeserve_feedback_absolute_error_count"] == len(errors) == 40
    assert samples["kubeserve_feedback_squared_error_count"] == 40
    assert samples["kubeserve_feedback_absolute_error_sum"] == pytest.approx(np.abs(error).sum())
    assert samples["kubeserve_feedback_squared_error_sum"] == pytest.approx((error**2).sum())
    assert samples["kubeserve_feedback_reward_count"] == 5
    assert samples["kubeserve_feedback_reward_sum"] == 0 + 8 + 16 + 24 + 32
    assert samples["kubeserve_feedback_reward_squared_total"] == 0 + 64 + 256 + 576 + 1024
    assert samples["kubeserve_feedback_conversions_total"] == 4  # every reward but the 0
    assert 0 < np.sqrt((error**2).mean()) < 1  # a sane RMSE for petal width in cm
