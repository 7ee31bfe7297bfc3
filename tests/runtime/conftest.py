"""Fixtures for runtime tests: tiny real models trained here, and real servers.

Every model is trained in the session (iris, a few milliseconds each) and saved the way
a user would ship it. Servers are real ``kubeserve-runtime serve`` subprocesses on
loopback; the iris server is shared by the whole session (tests only read from it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


@pytest.fixture(scope="session")
def iris() -> tuple[Array, Array]:
    """The iris features (float64, 150x4) and labels."""
    features, labels = load_iris(return_X_y=True)
    return np.asarray(features), np.asarray(labels)


@pytest.fixture(scope="session")
def sklearn_model(iris: tuple[Array, Array]) -> LogisticRegression:
    """A logistic regression fitted on iris."""
    return LogisticRegression(max_iter=500).fit(*iris)


@pytest.fixture(scope="session")
def sklearn_dir(tmp_path_factory: pytest.TempPathFactory, sklearn_model: Any) -> Path:
    """A model directory holding model.joblib."""
    path = tmp_path_factory.mktemp("sklearn")
    joblib.dump(sklearn_model, path / "model.joblib")
    return path


@pytest.fixture(scope="session")
def sklearn_server(sklearn_dir: Path) -> Iterator[RuntimeProcess]:
    """A runtime serving the iris model as 'iris', version 'v1', 64 KiB body limit."""
    with RuntimeProcess(
        sklearn_dir, "iris", "--model-version", "v1", "--max-request-bytes", "65536"
    ) as server:
        yield server
