"""Fixtures shared by every test folder.

Cluster fixtures (any test using them is marked ``cluster`` automatically):
- ``kubeconfig`` (session): path of an admin kubeconfig for a real control plane. It is
  ``$KUBECONFIG`` when that reaches a ready cluster, otherwise a fresh local control plane
  (``kubeserve.devcluster``) started once per run and stopped at the end. The project's
  crds/ plus the Gateway API, ServiceMonitor and PrometheusRule CRDs are installed, and
  ``KUBECONFIG`` is set for the session so in-process clients (kopf, kubernetes) find it.
- ``api_client`` (session): a ``kubernetes.client.ApiClient`` for that cluster.
- ``namespace`` (function): a fresh namespace per test, deleted afterwards.
- ``operator_factory`` / ``operator`` (function): ``kubeserve run`` subprocesses watching
  only the test's namespace (see ``kubeserve.controller.process``).
- ``kubectl_binary`` / ``helm_binary`` (session): the cached kubectl and helm binaries
  (built on first use; they need no cluster).

Metrics fixture (no cluster):
- ``start_prometheus`` (module): ``start_prometheus(targets)`` starts the pinned, real
  Prometheus on loopback scraping ``targets`` every second, waits for ``/-/ready`` and for
  every target to be up, and stops it when the module's tests are done. Tests using it
  are skipped, with the reason, when ``kubeserve cluster build`` has not built it.
- ``promtool_binary`` (session): the cached promtool (skipped likewise).
- ``chart_prometheus_rule`` / ``chart_rules_file`` (session): the chart's PrometheusRule
  as the real helm renders it (``metrics.prometheusRule.enabled``), and its groups
  written as a Prometheus rule file.

When any selected test is marked ``cluster``, missing binaries are built right after
collection (a cold build takes minutes, longer than one test's timeout allows).

``kubeserve.devcluster`` is imported inside the fixtures, so unit tests never pay for it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from kubeserve.controller.process import OperatorProcess
    from kubeserve.devcluster.prometheus import PrometheusServer, Target

FULL_EXAMPLE = Path(__file__).resolve().parent / "unit" / "golden" / "inputs" / "full.yaml"
"""An InferenceService that uses every spec field (unit, CRD and builder tests share it)."""

SetPath = Callable[[dict[str, Any], str, Any], dict[str, Any]]


def with_path(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with one dotted path set (list indexes as numbers)."""
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = obj
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


@pytest.fixture
def full_isvc() -> dict[str, Any]:
    """A fresh copy of the full example InferenceService."""
    obj: dict[str, Any] = yaml.safe_load(FULL_EXAMPLE.read_text())
    return obj


@pytest.fixture
def set_path() -> SetPath:
    """:func:`with_path`, for tests that edit one field of an object."""
    return with_path


CLUSTER_FIXTURES = frozenset({"kubeconfig", "api_client", "namespace", "operator_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a cluster fixture with ``cluster``."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing control plane binaries before the first test, outside per-test timeouts."""
    if any(item.get_closest_marker("cluster") for item in session.items):
        from kubeserve.devcluster import build

        build.ensure_built()


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yield the kubeconfig of a ready control plane with the CRDs installed."""
    from kubeserve.devcluster import session

    with (
        session.cluster(tmp_path_factory.mktemp("cluster")) as path,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("KUBECONFIG", str(path))
        yield path


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[ApiClient]:
    """Yield a Kubernetes API client for the session's cluster."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh namespace for one test; delete it afterwards."""
    from kubeserve.devcluster import session

    name = session.create_namespace(api_client, session.namespace_name(request.node.name))
    try:
        yield name
    finally:
        session.delete_namespace(api_client, name)


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """Return the cached kubectl (built if missing)."""
    from kubeserve.devcluster import build

    build.ensure_built()
    return build.binary("kubectl")


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """Return the cached helm (built if missing)."""
    from kubeserve.devcluster import build

    build.ensure_built()
    return build.binary("helm")


@pytest.fixture
def operator_factory(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Yield a factory of ``kubeserve run`` processes scoped to the test's namespace.

    Each call starts a fresh operator (``env`` adds operator settings, ``args`` flags of
    ``kubeserve run``); all of them are stopped after the test, and their logs are
    printed when the test fails.
    """
    from kubeserve.controller.process import OperatorProcess

    started: list[OperatorProcess] = []

    def start(env: dict[str, str] | None = None, args: Sequence[str] = ()) -> OperatorProcess:
        settings = {"KUBESERVE_OPERATOR_INGRESS_MODE": "gateway", **(env or {})}
        log = tmp_path / f"operator-{len(started)}.log"
        proc = OperatorProcess(kubeconfig, log, namespaces=[namespace], env=settings, args=args)
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()
            print(f"--- {proc.log_path.name}\n{proc.log()[-4000:]}")


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    """A running operator watching the test's namespace."""
    return operator_factory()


def require_prometheus_built() -> Path:
    """Return the folder of the cached prometheus and promtool; skip when not built."""
    from kubeserve.devcluster import build, versions

    folder = build.binary("prometheus").parent
    if not build.is_built(versions.component("prometheus")):
        pytest.skip(
            f"Prometheus {versions.PROMETHEUS_RELEASE} is not built: run `kubeserve cluster "
            f"build` (it caches prometheus and promtool in {folder})"
        )
    return folder


@pytest.fixture(scope="session")
def promtool_binary() -> Path:
    """Return the cached promtool (skips when ``kubeserve cluster build`` has not run)."""
    return require_prometheus_built() / "promtool"


@pytest.fixture(scope="module")
def start_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., PrometheusServer]]:
    """Yield ``start(targets, rule_files=None)``: a real Prometheus scraping ``targets``
    every second, ready and with every target up; all are stopped after the module."""
    from kubeserve.devcluster.prometheus import PrometheusServer

    require_prometheus_built()
    started: list[PrometheusServer] = []

    def start(targets: list[Target], rule_files: list[Path] | None = None) -> PrometheusServer:
        folder = tmp_path_factory.mktemp("prometheus")
        server = PrometheusServer(folder, targets, rule_files=rule_files)
        started.append(server)
        server.start()
        server.wait_targets_up()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


CHART = Path(__file__).resolve().parents[1]
PROMETHEUS_RULE_VALUES = {
    "metrics.prometheusRule.enabled": "true",
    "metrics.prometheusRule.labels.release": "prom",
}


@pytest.fixture(scope="session")
def chart_prometheus_rule() -> dict[str, Any]:
    """The chart's PrometheusRule rendered by helm with PROMETHEUS_RULE_VALUES.

    Only Prometheus and promtool consume it, so it skips like them when they are not built
    (before building helm, which would build every missing component)."""
    from kubeserve.chart import helm
    from kubeserve.devcluster import build

    require_prometheus_built()
    build.ensure_built()
    text = helm.template(build.binary("helm"), CHART, values=PROMETHEUS_RULE_VALUES)
    found = [obj for obj in yaml.safe_load_all(text) if obj and obj["kind"] == "PrometheusRule"]
    assert len(found) == 1, f"expected one PrometheusRule, got {len(found)}"
    rule: dict[str, Any] = found[0]
    return rule


@pytest.fixture(scope="session")
def chart_rules_file(
    chart_prometheus_rule: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The chart's PrometheusRule groups as a Prometheus rule file."""
    path = tmp_path_factory.mktemp("rules") / "kubeserve-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": chart_prometheus_rule["spec"]["groups"]}))
    return path
