"""Format detection and loading.

Detection looks at the files in the model directory, in this order: ``handler.py`` ->
custom; ``*.onnx`` -> onnx; ``*.joblib``/``*.pkl``/``*.pickle`` -> sklearn; ``*.pt``/
``*.pth``/``*.torchscript`` -> pytorch; ``*.ubj``/``*.xgb``/``model.json`` -> xgboost;
``*.txt``/``*.lgb`` -> lightgbm; ``*.bst`` -> lightgbm when the file is LightGBM text
(starts with ``tree``), else xgboost. Anything else is an error that lists what it saw.
"""

from __future__ import annotations

from pathlib import Path

from kubeserve_runtime.errors import ModelLoadError
from kubeserve_runtime.models.base import Model
from kubeserve_runtime.settings import ModelFormat


def detect_format(model_dir: Path) -> ModelFormat:
    """Return the model format found in ``model_dir``."""
    if not model_dir.exists():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    files = [model_dir] if model_dir.is_file() else [p for p in model_dir.iterdir() if p.is_file()]
    names = {p.name for p in files}
    suffixes = {p.suffix for p in files}
    if "handler.py" in names:
        return ModelFormat.CUSTOM
    rules: list[tuple[set[str], ModelFormat]] = [
        ({".onnx"}, ModelFormat.ONNX),
        ({".joblib", ".pkl", ".pickle"}, ModelFormat.SKLEARN),
        ({".pt", ".pth", ".torchscript"}, ModelFormat.PYTORCH),
        ({".ubj", ".xgb"}, ModelFormat.XGBOOST),
        ({".txt", ".lgb"}, ModelFormat.LIGHTGBM),
    ]
    for wanted, fmt in rules:
        if suffixes & wanted:
            return fmt
    if "model.json" in names:
        return ModelFormat.XGBOOST
    for path in files:
        if path.suffix == ".bst":
            with path.open("rb") as fh:
                head = fh.read(5)
            return ModelFormat.LIGHTGBM if head == b"tree\n" else ModelFormat.XGBOOST
    seen = ", ".join(sorted(names)) or "nothing"
    raise ModelLoadError(
        f"cannot tell the model format of {model_dir} (found: {seen}); "
        "set --format / KUBESERVE_MODEL_FORMAT"
    )


def model_class(fmt: ModelFormat) -> type[Model]:
    """Return the Model class for a format (importing only that module)."""
    if fmt is ModelFormat.ONNX:
        from kubeserve_runtime.models.onnx import OnnxModel

        return OnnxModel
    if fmt is ModelFormat.SKLEARN:
        from kubeserve_runtime.models.sklearn import SklearnModel

        return SklearnModel
    if fmt is ModelFormat.XGBOOST:
        from kubeserve_runtime.models.xgboost import XGBoostModel

        return XGBoostModel
    if fmt is ModelFormat.LIGHTGBM:
        from kubeserve_runtime.models.lightgbm import LightGBMModel

        return LightGBMModel
    if fmt is ModelFormat.PYTORCH:
        from kubeserve_runtime.models.torchscript import TorchScriptModel

        return TorchScriptModel
    from kubeserve_runtime.models.custom import CustomModel

    return CustomModel


def load_model(model_dir: Path, fmt: ModelFormat | None) -> Model:
    """Detect (when ``fmt`` is None), construct and load the model."""
    chosen = fmt or detect_format(model_dir)
    model = model_class(chosen)(model_dir)
    try:
        model.load()
    except FileNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc
    return model
