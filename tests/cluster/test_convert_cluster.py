"""Every converted KServe sample is accepted by the real API server (CRD schema + CEL).

Server-side dry-run with strict field validation: an unknown or misspelt field in a
conversion result fails here, not only a schema violation. Nothing is stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from isvc_api import custom
from kubernetes.client import ApiClient

from kubeserve.convert import kserve
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

SAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "unit" / "convert" / "kserve").glob("*.yaml")
)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_converted_sample_is_accepted_by_the_api_server(
    path: Path, api_client: ApiClient, namespace: str
) -> None:
    conversion = kserve.convert(yaml.safe_load(path.read_text()))
    assert conversion.result is not None, conversion.report()
    body = conversion.result
    body["metadata"]["namespace"] = namespace  # the sample's own namespace may not exist
    stored = custom(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All", field_validation="Strict"
    )
    assert stored["spec"] == body["spec"]
