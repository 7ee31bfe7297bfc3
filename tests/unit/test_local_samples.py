"""`kubeserve local`'s sample requests: curl commands shaped by the model's metadata."""

from __future__ import annotations

from kubeserve.local.samples import sample_requests


def test_sample_requests_follow_the_models_metadata() -> None:
    """A V2 and a V1 curl sized by the declared input; just metadata when unknown."""
    meta = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]}
    lines = sample_requests("http://h:1", "m", meta)
    assert '"name": "x"' in lines[1]
    assert '"shape": [1, 3]' in lines[1]
    assert (
        lines[2] == "curl -s http://h:1/v1/models/m:predict -d '{\"instances\": [[1.0, 1.0, 1.0]]}'"
    )
    assert sample_requests("http://h:1", "m", {}) == ["curl -s http://h:1/v2/models/m"]
