"""Every model format, trained here, served by a real process and checked end to end.

Each format's predictions over V2 REST equal the same model's in-process predictions.
Detection and the missing-extra message are checked in-process.
"""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from kubeserve_runtime.errors import MissingExtraError, ModelLoadError
from kubeserve_runtime.models import detect_format, load_model
from kubeserve_runtime.settings import ModelFormat
from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]
Maker = Callable[[Path, Array, Array], Callable[[Array], dict[str, Array]]]

HANDLER = textwrap.dedent(
    '''
    """A custom handler: scales rows by a factor read at load time."""
    import numpy as np

    class Handler:
        inputs = [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}]
        outputs = [{"name": "scaled", "datatype": "FP64", "shape": [-1, 4]}]

        def load(self, model_dir):
            self.factor = float((model_dir / "factor.txt").read_text())

        def preprocess(self, feed):
            return feed["x"] * self.factor

        def predict(self, data):
            return {"scaled": data, "total": data.sum(axis=1)}

        def postprocess(self, result):
            return result
    '''
)


def make_onnx(path: Path, x: Array, y: Array) -> Callable[[Array], dict[str, Array]]:
    """An MLP classifier converted with skl2onnx (no ZipMap: two tensor outputs)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(x, y)
    onnx_model = convert_sklearn(
        model,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},
    )
    (path / "model.onnx").write_bytes(onnx_model.SerializeToString())
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path / "model.onnx"))

    def predict(rows: Array) -> dict[str, Array]:
        label, proba = session.run(None, {"float_input": rows.astype(np.float32)})
        return {"label": label, "probabilities": proba}

    return predict


def make_xgboost(path: Path, x: Array, y: Array) -> Callable[[Array], dict[str, Array]]:
    """An XGBoost classifier saved as UBJSON."""
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    model.save_model(path / "model.ubj")
    booster = model.get_booster()
    return lambda rows: {"output-0": booster.inplace_predict(rows.astype(np.float32))}


def make_lightgbm(path: Path, x: Array, y: Array) -> Callable[[Array], dict[str, Array]]:
    """A LightGBM classifier saved as text."""
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    model.booster_.save_model(str(path / "model.txt"))
    booster = model.booster_
    return lambda rows: {"output-0": np.asarray(booster.predict(rows))}


def make_torchscript(path: Path, x: Array, y: Array) -> Callable[[Array], dict[str, Array]]:
    """A scripted linear layer."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.script(torch.nn.Linear(4, 3).eval())
        module.save(str(path / "model.pt"))

    def predict(rows: Array) -> dict[str, Array]:
        with torch.inference_mode():
            out = module(torch.from_numpy(rows.astype(np.float32))).numpy()
        return {"output-0": out}

    return predict


def make_custom(path: Path, x: Array, y: Array) -> Callable[[Array], dict[str, Array]]:
    """A custom handler.py with preprocess/predict/postprocess."""
    (path / "handler.py").write_text(HANDLER)
    (path / "factor.txt").write_text("2.5")
    return lambda rows: {"scaled": rows * 2.5, "total": (rows * 2.5).sum(axis=1)}


FORMATS: dict[str, tuple[Maker, str, str, str]] = {
    # format -> (maker, platform, input name, input datatype)
    "onnx": (make_onnx, "onnxruntime_onnx", "float_input", "FP32"),
    "xgboost": (make_xgboost, "xgboost", "input-0", "FP32"),
    "lightgbm": (make_lightgbm, "lightgbm", "input-0", "FP64"),
    "pytorch": (make_torchscript, "pytorch_torchscript", "input-0", "FP32"),
    "custom": (make_custom, "custom", "x", "FP64"),
}


@pytest.fixture(scope="module", params=sorted(FORMATS))
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    iris: tuple[Array, Array],
) -> Iterator[tuple[str, RuntimeProcess, Callable[[Array], dict[str, Array]]]]:
    """A real server for each format, with the in-process predict to compare with."""
    fmt = str(request.param)
    maker = FORMATS[fmt][0]
    path = tmp_path_factory.mktemp(fmt)
    predict = maker(path, *iris)
    assert detect_format(path) == ModelFormat(fmt)
    with RuntimeProcess(path, "m") as server:
        yield fmt, server, predict


def test_format_serves_same_predictions(
    served: tuple[str, RuntimeProcess, Callable[[Array], dict[str, Array]]],
    iris: tuple[Array, Array],
) -> None:
    """V2 JSON inference equals in-process inference, for every output."""
    fmt, server, predict = served
    _, platform, input_name, datatype = FORMATS[fmt]
    meta = httpx.get(f"{server.url}/v2/models/m").json()
    assert meta["platform"] == platform
    rows = iris[0][::15]
    body = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": datatype,
                "data": rows.tolist(),
            }
        ]
    }
    response = httpx.post(f"{server.url}/v2/models/m/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    expected = predict(rows)
    assert set(outputs) == set(expected)
    for name, array in expected.items():
        got = np.asarray(outputs[name]["data"]).reshape(outputs[name]["shape"])
        np.testing.assert_allclose(got, array, rtol=1e-5, atol=1e-6)
    v1 = httpx.post(f"{server.url}/v1/models/m:predict", json={"instances": rows.tolist()})
    assert v1.status_code == 200, v1.text
    assert len(v1.json()["predictions"]) == len(rows)


def test_detection_rules(tmp_path: Path) -> None:
    """Detection reads file names, sniffs .bst, and explains what it could not tell."""
    cases = {
        "a.onnx": ModelFormat.ONNX,
        "model.pkl": ModelFormat.SKLEARN,
        "model.pth": ModelFormat.PYTORCH,
        "model.json": ModelFormat.XGBOOST,
        "model.lgb": ModelFormat.LIGHTGBM,
        "handler.py": ModelFormat.CUSTOM,
    }
    for name, fmt in cases.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_bytes(b"x")
        assert detect_format(folder) == fmt, name
    bst = tmp_path / "bst"
    bst.mkdir()
    (bst / "model.bst").write_bytes(b"tree\nversion=v4\n")
    assert detect_format(bst) == ModelFormat.LIGHTGBM
    (bst / "model.bst").write_bytes(b"\x00binary")
    assert detect_format(bst) == ModelFormat.XGBOOST
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("hi")
    with pytest.raises(ModelLoadError, match=r"found: README.*KUBESERVE_MODEL_FORMAT"):
        detect_format(empty)
    with pytest.raises(ModelLoadError, match="does not exist"):
        detect_format(tmp_path / "missing")


def test_missing_extra_names_the_pip_extra_when_onnxruntime_is_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With onnxruntime unimportable, loading says which extra to install."""
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'kubeserve\[onnx\]'"):
        load_model(tmp_path, None)


def test_sklearn_loads_in_process(tmp_path: Path, sklearn_model: Any) -> None:
    """The sklearn format loads a joblib file and predicts through the interface."""
    joblib.dump(sklearn_model, tmp_path / "model.joblib")
    model = load_model(tmp_path, ModelFormat.SKLEARN)
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    assert model.predict({"anything": rows})["output-0"].tolist() == [0]
    (tmp_path / "other.pkl").write_bytes(b"x")
    (tmp_path / "model.joblib").rename(tmp_path / "m2.joblib")
    with pytest.raises(ModelLoadError, match="several model files"):
        load_model(tmp_path, ModelFormat.SKLEARN)
