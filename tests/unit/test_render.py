"""`kubeserve render`: the children for an InferenceService file, with no cluster."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.cli import main
from kubeserve.rollout.revision import revision_hash

INPUTS = Path(__file__).resolve().parent / "golden" / "inputs"


def render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run `kubeserve render` in-process; return (exit code, objects, stderr)."""
    code = main(["render", *args])
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d is not None], err


def test_fresh_isvc_renders_its_current_revisions(capsys: pytest.CaptureFixture[str]) -> None:
    """Each predictor's revision is the hash of its spec; weights follow the spec."""
    obj = yaml.safe_load((INPUTS / "reco.yaml").read_text())
    code, children, _ = render(capsys, "-f", str(INPUTS / "reco.yaml"))
    assert code == 0
    main_rev = revision_hash(obj["spec"]["predictor"])
    b_rev = revision_hash(obj["spec"]["variants"][0]["predictor"])
    names = {(c["kind"], c["metadata"]["name"]) for c in children}
    assert ("Deployment", f"reco-predictor-{main_rev}") in names
    assert ("Deployment", f"reco-b-{b_rev}") in names
    (route,) = [c for c in children if c["kind"] == "HTTPRoute"]
    weights = {r["name"]: r["weight"] for r in route["spec"]["rules"][-1]["backendRefs"]}
    assert weights == {f"reco-predictor-{main_rev}": 80, f"reco-b-{b_rev}": 20}


def test_output_is_what_the_builders_return_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Objects come sorted by kind then name, and rendering twice gives the same text."""
    main(["render", "-f", str(INPUTS / "fraud.yaml")])
    first = capsys.readouterr().out
    main(["render", "-f", str(INPUTS / "fraud.yaml")])
    assert capsys.readouterr().out == first
    kinds = [d["kind"] for d in yaml.safe_load_all(first)]
    assert kinds == [
        "Deployment",
        "Service",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HTTPRoute",
    ]


def test_invalid_spec_names_the_field_and_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """min > max and a bad format are reported with their paths, exit status 1."""
    obj = yaml.safe_load((INPUTS / "iris.yaml").read_text())
    obj["spec"]["predictor"]["minReplicas"] = 5
    obj["spec"]["predictor"]["maxReplicas"] = 2
    obj["spec"]["predictor"]["model"]["modelFormat"]["name"] = "tensorflow"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(obj))
    code, children, err = render(capsys, "-f", str(path))
    assert code == 1
    assert children == []
    assert "InferenceService 'iris' is invalid" in err
    assert "spec.predictor.model.modelFormat.name: Input should be 'onnx'" in err
    obj["spec"]["predictor"]["model"]["modelFormat"]["name"] = "sklearn"
    path.write_text(yaml.safe_dump(obj))
    code, _, err = render(capsys, "-f", str(path))
    assert "spec.predictor: minReplicas must be less than or equal to maxReplicas" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec: [unclosed", "invalid YAML"),
        ("", "no InferenceService found"),
        (
            "apiVersion: v1\nkind: Service\n",
            "document 1 is 'Service', not an serving.kubeserve.io/v1alpha1",
        ),
        ("- a list\n", "document 1 is 'list'"),
    ],
)
def test_unusable_files_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    """Bad YAML, empty files and other kinds get a one-line reason."""
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, _, err = render(capsys, "-f", str(path))
    assert code == 1
    assert message in err


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A missing file is reported, not a traceback."""
    code, _, err = render(capsys, "-f", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "No such file or directory" in err


def test_nginx_refusal_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """A plan nginx cannot express fails with the reason."""
    code, _, err = render(capsys, "-f", str(INPUTS / "reco.yaml"), "--ingress-mode", "nginx")
    assert code == 1
    assert "mirror.percent is 25" in err


def test_stdin_multi_document_and_uid_note(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-f -` reads several InferenceServices; without uid, owner refs are left out."""
    docs = [yaml.safe_load((INPUTS / n).read_text()) for n in ("iris.yaml", "fraud.yaml")]
    del docs[0]["metadata"]["uid"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump_all(docs)))
    code, children, err = render(capsys, "-f", "-")
    assert code == 0
    assert {c["metadata"]["namespace"] for c in children} == {"ml", "risk"}
    assert "ownerReferences are left out" in err
    assert all(
        "ownerReferences" not in c["metadata"]
        for c in children
        if c["metadata"]["namespace"] == "ml"
    )


def test_settings_come_from_the_operator_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBESERVE_OPERATOR_* shapes the output as it does in the operator; bad ones fail."""
    monkeypatch.setenv("KUBESERVE_OPERATOR_DOMAIN_TEMPLATE", "{name}.models.corp")
    code, children, _ = render(capsys, "-f", str(INPUTS / "iris.yaml"))
    assert code == 0
    (route,) = [c for c in children if c["kind"] == "HTTPRoute"]
    assert route["spec"]["hostnames"] == ["iris.models.corp"]
    monkeypatch.setenv("KUBESERVE_OPERATOR_INGRESS_MODE", "istio")
    code, _, err = render(capsys, "-f", str(INPUTS / "iris.yaml"))
    assert code == 1
    assert "operator settings are invalid" in err
    assert "ingress_mode" in err


def test_console_script() -> None:
    """The installed `kubeserve render` works as a process."""
    out = subprocess.run(
        [sys.executable, "-m", "kubeserve.cli", "render", "-f", str(INPUTS / "iris.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kind: HTTPRoute" in out.stdout
