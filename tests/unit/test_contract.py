"""The operator/runtime contract holds: what the operator renders, the runtime reads.

Pods are rendered for every example and for the full InferenceService; each environment
variable and argument of the runtime container and of the storage initializer is
checked against the runtime itself: its settings class (the variables it reads), its
real argument parser, and the storage options built from the rendered environment.
The inputSchema rules, written once for the CRD (operator) and once for the runtime,
are compared on generated schemas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubeserve.api import v1alpha1 as api
from kubeserve.builders.pod import INITIALIZER_CONTAINER, RUNTIME_CONTAINER
from kubeserve.config import OperatorConfig
from kubeserve.render import render_object
from kubeserve_runtime import contract
from kubeserve_runtime import schema as runtime_schema
from kubeserve_runtime.cli import build_parser
from kubeserve_runtime.datatypes import NUMPY_BY_DATATYPE
from kubeserve_runtime.settings import RuntimeSettings
from kubeserve_runtime.storage.options import DownloadOptions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/isvc.yaml"))
FULL = ROOT / "tests" / "unit" / "golden" / "inputs" / "full.yaml"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rendered_pods(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pod specs of every bundled-runtime Deployment the operator renders for `obj`
    (a custom container is the user's program: the contract does not reach it)."""
    children = render_object(obj, OperatorConfig(), NOW)
    pods = [c["spec"]["template"]["spec"] for c in children if c["kind"] == "Deployment"]
    return [p for p in pods if p.get("initContainers")]


JWT_AUTH = (
    {"mode": "serviceAccount", "audience": "iris", "allow": ["apps/web", "batch/*"]},
    {
        "mode": "oidc",
        "issuer": "https://login.example.com",
        "audience": "iris",
        "allow": ["alice"],
        "requiredClaims": {"groups": "ml"},
    },
)
"""The auth blocks the full example cannot carry (JWT modes need bundled-runtime models)."""


def sources() -> list[dict[str, Any]]:
    """Every example InferenceService, the full one (every spec field set), and the first
    example under each JWT auth mode."""
    objs = [yaml.safe_load(path.read_text()) for path in [*EXAMPLES, FULL]]
    for auth in JWT_AUTH:
        obj = yaml.safe_load(EXAMPLES[0].read_text())
        obj["spec"]["auth"] = auth
        objs.append(obj)
    return objs


def containers(name: str) -> list[dict[str, Any]]:
    """Every rendered container called `name` (init containers included)."""
    return [
        c
        for obj in sources()
        for pod in rendered_pods(obj)
        for c in [*pod.get("initContainers", []), *pod["containers"]]
        if c["name"] == name
    ]


def user_env(obj: Mapping[str, Any]) -> set[str]:
    """Variables the user set on a predictor's model (not the operator's to check)."""
    spec = obj["spec"]
    predictors = [spec["predictor"], *(v["predictor"] for v in spec.get("variants") or [])]
    return {e["name"] for p in predictors for e in (p.get("model") or {}).get("env") or []}


def settings_env_names() -> set[str]:
    """The variables the runtime's settings read, from the settings class itself."""
    config = RuntimeSettings.model_config
    assert not config.get("case_sensitive"), "names are compared upper-case below"
    prefix = str(config.get("env_prefix") or "")
    return {f"{prefix}{name}".upper() for name in RuntimeSettings.model_fields}


def unread(names: set[str]) -> set[str]:
    """Names the runtime's settings do not read."""
    return {n for n in names if n.upper() not in settings_env_names()}


def operator_env(container: Mapping[str, Any], skip: set[str]) -> dict[str, str]:
    """The container's literal environment, without the user's own variables."""
    return {e["name"]: e["value"] for e in container.get("env", []) if e["name"] not in skip}


def test_examples_render_model_pods() -> None:
    """The check below covers both containers (so an empty list cannot pass it)."""
    assert len(EXAMPLES) >= 6
    assert containers(RUNTIME_CONTAINER)
    assert containers(INITIALIZER_CONTAINER)


def test_every_runtime_variable_the_operator_renders_is_a_runtime_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each KUBESERVE_* of the serving container names a setting, and the runtime
    accepts the rendered values together (settings validated from that environment)."""
    rendered: set[str] = set()
    for obj in sources():
        skip = user_env(obj)
        for pod in rendered_pods(obj):
            for container in pod["containers"]:
                if container["name"] != RUNTIME_CONTAINER:
                    continue
                env = operator_env(container, skip)
                rendered |= set(env)
                assert unread(set(env)) == set(), container["env"]
                with monkeypatch.context() as patch:
                    for name, value in env.items():
                        patch.setenv(name, value)
                    RuntimeSettings()
    assert {
        contract.ENV_INPUT_SCHEMA,
        contract.ENV_AUTH_TOKEN_FILE,
        contract.ENV_AUTH_MODE,
        contract.ENV_AUTH_AUDIENCE,
        contract.ENV_AUTH_ISSUER,
        contract.ENV_AUTH_ALLOW,
        contract.ENV_AUTH_REQUIRED_CLAIMS,
        contract.ENV_AUTH_FETCH_TOKEN_FILE,
        contract.ENV_AUTH_CA_FILE,
        contract.ENV_AUTH_JWKS_URL,
        contract.ENV_AUTH_DISCOVERY_URL,
        contract.ENV_PAYLOAD_LOGGER,
    } <= rendered


def test_the_check_reports_a_variable_no_setting_reads() -> None:
    """The check itself: a misspelt name is reported, a real one is not."""
    assert unread({"KUBESERVE_HTTP_PORTS", contract.ENV_HTTP_PORT}) == {"KUBESERVE_HTTP_PORTS"}


def test_every_runtime_variable_of_the_contract_is_a_runtime_setting() -> None:
    """The contract's names for ``serve`` are the settings' names."""
    download = {
        contract.ENV_MAX_MODEL_BYTES,
        contract.ENV_STORAGE_SECRET_DIR,
        contract.ENV_PVC_ROOT,
    }
    serve_names = {
        value
        for key, value in vars(contract).items()
        if key.startswith("ENV_") and key != "ENV_PREFIX" and value not in download
    }
    assert contract.ENV_MODEL_NAME in serve_names
    assert unread(serve_names) == set()


def test_every_argument_the_operator_renders_parses_with_the_runtime_parser() -> None:
    """Command and arguments of both containers go through the runtime's own argparse
    (an unknown flag or subcommand exits there), and the command is the installed script."""
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts[contract.RUNTIME_COMMAND] == "kubeserve_runtime.cli:main"
    seen_link = False
    for container in containers(RUNTIME_CONTAINER) + containers(INITIALIZER_CONTAINER):
        assert container["command"] == [contract.RUNTIME_COMMAND]
        args = build_parser().parse_args(container["args"])
        assert callable(args.handler)
        seen_link |= getattr(args, "link", False)
    assert seen_link, "the full example's pvc:// variant renders --link"


def test_the_parser_refuses_a_flag_it_does_not_know() -> None:
    """The check itself: argparse exits on an unknown flag instead of ignoring it."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([contract.SERVE, "--not-a-flag"])


def test_every_initializer_variable_is_read_by_the_download_options(tmp_path: Path) -> None:
    """The storage initializer's variables take effect in the options ``download`` builds:
    the size limit, and the Secret directory's files as configuration."""
    (tmp_path / "AWS_ACCESS_KEY_ID").write_text("from-the-secret\n")
    checked = {contract.ENV_MAX_MODEL_BYTES, contract.ENV_STORAGE_SECRET_DIR}
    rendered: set[str] = set()
    for container in containers(INITIALIZER_CONTAINER):
        env = operator_env(container, set())
        rendered |= set(env)
        assert set(env) <= checked, "a new variable needs a proof here that download reads it"
        local = dict(env)
        if contract.ENV_STORAGE_SECRET_DIR in local:  # the Secret's mount, here
            local[contract.ENV_STORAGE_SECRET_DIR] = str(tmp_path)
        options = DownloadOptions.from_environment(environ=local)
        assert options.max_bytes == int(env[contract.ENV_MAX_MODEL_BYTES])
        if contract.ENV_STORAGE_SECRET_DIR in env:
            assert options.get("AWS_ACCESS_KEY_ID") == "from-the-secret"
    assert rendered == checked


def test_the_api_identity_and_datatypes_are_the_contracts() -> None:
    """The models' literal apiVersion and datatype enum are the contract's values; every
    datatype but BF16 has an array form in the runtime."""
    field = api.InferenceService.model_fields["api_version"]
    assert get_args(field.annotation) == (contract.API_VERSION,)
    assert get_args(api.DataType) == contract.DATATYPES
    assert set(NUMPY_BY_DATATYPE) == set(contract.DATATYPES) - {"BF16"}


# --------------------------------------------------------------------------- inputSchema

CRD_LIMITS = {"name": 128, "shape": 8, "inputs": 64}
"""Size limits only the CRD has (they bound the API server's CEL cost); the runtime
serves hand-written schemas too and does not repeat them."""

NAMES = st.one_of(st.sampled_from(["x", "y", ""]), st.text(min_size=120, max_size=136))
INPUT = st.fixed_dictionaries(
    {
        "name": NAMES,
        "datatype": st.sampled_from([*contract.DATATYPES, "FP8", "fp32"]),
    },
    optional={
        "shape": st.lists(st.integers(-3, 4), max_size=10),
        # JSON (the API server's, the env variable's) has no NaN or infinity.
        "min": st.floats(-5, 5, allow_nan=False) | st.integers(-5, 5),
        "max": st.floats(-5, 5, allow_nan=False) | st.integers(-5, 5),
        "allowNaN": st.booleans(),
        "unknown": st.just(1),
    },
)
SCHEMAS = st.fixed_dictionaries({"inputs": st.lists(INPUT, max_size=4)})


def within_crd_limits(schema: Mapping[str, Any]) -> bool:
    """Whether the schema fits the size limits only the CRD enforces."""
    inputs = schema["inputs"]
    return len(inputs) <= CRD_LIMITS["inputs"] and all(
        len(i["name"]) <= CRD_LIMITS["name"] and len(i.get("shape") or []) <= CRD_LIMITS["shape"]
        for i in inputs
    )


def parsed(model: Any, schema: Mapping[str, Any]) -> Any:
    """The validated model, or None when it refuses the schema."""
    try:
        return model.model_validate(schema)
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(SCHEMAS)
def test_operator_and_runtime_agree_on_input_schemas(schema: dict[str, Any]) -> None:
    """Within the CRD's size limits both accept the same schemas; what the operator
    accepts, the runtime reads from the rendered JSON with the same meaning."""
    operator = parsed(api.InputSchema, schema)
    runtime = parsed(runtime_schema.InputSchema, schema)
    if within_crd_limits(schema):
        assert (operator is None) == (runtime is None)
    if operator is not None:
        assert runtime is not None
        assert runtime_schema.InputSchema.model_validate(operator.to_dict()) == runtime
