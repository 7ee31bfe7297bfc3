"""The generated CRD is structural, documented, validated by CEL, and committed fresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api.base import ApiModel
from kubeserve.api.commands import generated_files, stale_files, write_files
from kubeserve.api.crd import CRD_FILENAME, crd, openapi_schema, render_crd
from kubeserve.api.reference import render_reference
from kubeserve.api.schema import SchemaError, structural_schema
from kubeserve.cli import main

ROOT = Path(__file__).resolve().parents[3]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every schema node with its path."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_committed_files_are_fresh() -> None:
    """crds/ and docs/api.md match the models (run `kubeserve crds` when this fails)."""
    assert stale_files(ROOT) == [], "stale generated files: run `kubeserve crds`"


def test_schema_is_structural() -> None:
    """Every node has a type; no $ref; anyOf only as int-or-string; no mixed maps."""
    for path, node in nodes(openapi_schema()):
        assert "$ref" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, (
            path
        )
        for combinator in ("anyOf", "oneOf", "allOf", "not"):
            assert combinator not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert "default" not in node, path
        assert "title" not in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path
            assert "minimum" in node, path


def test_every_field_has_a_description() -> None:
    """Each property (they become `kubectl explain` text) is described.

    Root metadata is the exception: the API server refuses anything but its type there.
    """
    missing = [
        f"{path}.{name}"
        for path, node in nodes(openapi_schema())
        for name, child in node.get("properties", {}).items()
        if not child.get("description") and f"{path}.{name}" != ".metadata"
    ]
    assert missing == []


def test_spec_lists_are_bounded_for_cel_cost() -> None:
    """Lists in the spec carry maxItems so the API server's CEL cost estimate stays low."""
    spec = openapi_schema()["properties"]["spec"]
    unbounded = [
        path for path, node in nodes(spec) if node.get("type") == "array" and "maxItems" not in node
    ]
    assert unbounded == []


def rules(schema: dict[str, Any]) -> dict[str, str]:
    """Return message -> CEL rule for every rule in the schema."""
    return {
        rule["message"]: rule["rule"]
        for _, node in nodes(schema)
        for rule in node.get("x-kubernetes-validations", [])
    }


def test_cel_rules_are_present_with_human_messages() -> None:
    """The cross-field rules of the API are in the CRD."""
    found = rules(openapi_schema())
    for message in (
        "minReplicas must be less than or equal to maxReplicas",
        "variant names must be unique",
        "the weights of all variants must add up to at most 100",
        "mirror.variant must name one of spec.variants",
        "rollout.steps must be strictly increasing, e.g. [10, 25, 50]",
    ):
        assert message in found
    assert any(m.startswith("set exactly one of model") for m in found)
    assert found["minReplicas must be less than or equal to maxReplicas"].startswith(
        "!has(self.maxReplicas)"
    )


def test_ranges_and_enums() -> None:
    """Percents are 0..100, steps 1..99, formats/protocols/metrics are enums."""
    spec = openapi_schema()["properties"]["spec"]["properties"]
    predictor = spec["predictor"]["properties"]
    rollout = spec["rollout"]["properties"]
    assert (
        rollout["canaryTrafficPercent"]["minimum"],
        rollout["canaryTrafficPercent"]["maximum"],
    ) == (0, 100)
    assert (rollout["steps"]["items"]["minimum"], rollout["steps"]["items"]["maximum"]) == (1, 99)
    assert spec["mirror"]["properties"]["percent"]["maximum"] == 100
    assert spec["variants"]["items"]["properties"]["weight"]["maximum"] == 100
    model = predictor["model"]["properties"]
    assert "tensorflow" not in model["modelFormat"]["properties"]["name"]["enum"]
    assert model["protocolVersion"]["enum"] == ["v1", "v2"]
    assert predictor["scaleMetric"]["enum"] == ["cpu", "memory", "concurrency", "rps"]
    assert model["resources"]["properties"]["requests"]["additionalProperties"][
        "x-kubernetes-int-or-string"
    ]


def test_crd_names_columns_and_status() -> None:
    """shortName isvc, status subresource and the printer columns kubectl shows."""
    obj = crd()
    assert obj["metadata"]["name"] == "inferenceservices.serving.kubeserve.io"
    assert obj["spec"]["names"]["shortNames"] == ["isvc"]
    assert obj["spec"]["scope"] == "Namespaced"
    (version,) = obj["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Stable"] == ".status.revisions.stable.name"
    assert columns["Canary%"] == ".status.revisions.canary.trafficPercent"
    assert columns["Experiment"] == ".status.experiment.decision"
    assert list(columns)[:6] == ["URL", "Ready", "Stable", "Canary%", "Experiment", "Age"]
    assert version["schema"]["openAPIV3Schema"]["required"] == ["spec"]
    assert yaml.safe_load(render_crd()) == obj


def test_reference_documents_every_object_and_rule() -> None:
    """docs/api.md has a section per object type and lists each rule's message."""
    text = render_reference()
    for section in (
        "InferenceServiceSpec",
        "Predictor",
        "Rollout",
        "Analysis",
        "Variant",
        "Mirror",
    ):
        assert f"\n## {section}\n" in text
    plain = text.replace("\\", "")  # Markdown escapes (`\<claim>`) aside
    for message in rules(openapi_schema()):
        assert message in plain


def test_unstructural_models_are_refused() -> None:
    """A union of two types has no structural form: generation fails loudly."""

    class Bad(ApiModel):
        """A model with a union field."""

        value: int | list[int]

    with pytest.raises(SchemaError, match="anyOf of several types"):
        structural_schema(Bad)


def test_crds_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`kubeserve crds --check` fails on a stale tree; `kubeserve crds` fixes it."""
    assert main(["crds", "--root", str(tmp_path), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["crds", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "crds" / CRD_FILENAME).read_text() == render_crd()
    assert main(["crds", "--root", str(tmp_path), "--check"]) == 0
    assert write_files(tmp_path) == []
    docs = tmp_path / "docs" / "api.md"
    docs.write_text(docs.read_text() + "edited\n")
    assert stale_files(tmp_path) == [docs]
    assert sorted(generated_files(tmp_path)) == sorted([tmp_path / "crds" / CRD_FILENAME, docs])
