"""Sample requests: curl commands for a first prediction, shaped by the model's metadata.

Limits: a V2 and a V1 request only for a model with exactly one input of shape
``[batch, features]`` (filled with ones, which any numeric model accepts); for anything
else only the metadata request, since no valid body can be guessed.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any


def sample_requests(url: str, model: str, metadata: Mapping[str, Any]) -> list[str]:
    """curl commands for a first prediction, shaped by the model's V2 metadata."""
    lines = [f"curl -s {url}/v2/models/{model}"]
    inputs = metadata.get("inputs") or []
    if len(inputs) != 1:
        return lines
    spec = inputs[0]
    shape = [int(d) for d in spec.get("shape") or []]
    if len(shape) != 2 or shape[1] < 1:
        return lines
    row = [1.0] * shape[1]
    body = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [1, shape[1]],
                "datatype": spec["datatype"],
                "data": row,
            }
        ]
    }
    lines.append(
        f"curl -s {url}/v2/models/{model}/infer -H 'content-type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}"
    )
    v1 = json.dumps({"instances": [row]})
    lines.append(f"curl -s {url}/v1/models/{model}:predict -d {shlex.quote(v1)}")
    return lines
