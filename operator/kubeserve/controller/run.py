"""``kubeserve run``: start the operator (kopf underneath) with metrics and a liveness probe.

Credentials come from the in-cluster ServiceAccount, else from KUBECONFIG (or
``--kubeconfig``), so the same command runs in a pod and on a laptop against the local
control plane. In a pod the API server is the address in ``KUBERNETES_SERVICE_HOST`` /
``_PORT``, as client-go and the kubernetes client find it, never the DNS name
``kubernetes.default.svc`` that kopf's own service-account login names: that name needs
cluster DNS, which a cluster may lack (the local real node has none) or not yet serve.
kopf is configured to observe only: no peering objects, no CRD scans,
no annotations on the user's objects.

kopf, the Kubernetes client and the controller modules are imported inside
:func:`run` and :func:`register`, not at the top: the ``kubeserve`` CLI registers
every subcommand at start, and ``kubeserve render`` or ``--help`` should not pay for
(or need) the operator's dependencies. The reconcile pass itself imports at the top.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import kopf
    from kubernetes import client

logger = logging.getLogger("kubeserve")


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """An ApiClient from the ServiceAccount in a pod, else from a kubeconfig file."""
    from kubernetes import client
    from kubernetes import config as kube_config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config()
        return client.ApiClient()
    return kube_config.new_client_from_config(config_file=kubeconfig)


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """Return the API server URL a pod's environment names (None outside a pod).

    An IPv6 host gets brackets, as in client-go's ``rest.InClusterConfig``.
    """
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` subcommand."""
    parser = sub.add_parser("run", help="run the operator (watches InferenceServices)")
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then KUBECONFIG)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: all)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="port of /metrics (default from config)"
    )
    parser.add_argument(
        "--health-port", type=int, default=None, help="port of the kopf liveness probe /healthz"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from kubeserve.controller import election

    election.add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the operator until interrupted."""
    import kopf
    from prometheus_client import start_http_server

    from kubeserve.config import OperatorConfig
    from kubeserve.controller import election, elector, handlers
    from kubeserve.controller.kube import Kube
    from kubeserve.controller.metrics import OperatorMetrics
    from kubeserve.controller.reconcile import Reconciler
    from kubeserve.controller.state import Controller

    settings = OperatorConfig()
    elected = election.settings_from_args(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    metrics = OperatorMetrics()
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    health_port = args.health_port if args.health_port is not None else settings.health_port
    start_http_server(metrics_port, addr=settings.bind_address, registry=metrics.registry)
    kube_api = api_client(args.kubeconfig)
    candidate = None
    if elected is not None:  # the elector has its own client; the operator's is fenced
        candidate = elector.LeaseElector(api_client(args.kubeconfig), elected)
        kube_api = elector.fence(kube_api, candidate.is_leading)
    kube = Kube(kube_api, metrics)
    reconciler = Reconciler(kube=kube, config=settings, metrics=metrics)
    controller = Controller(reconcile=reconciler.reconcile)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, controller)
    _configure(registry, args.kubeconfig)
    logger.info("kubeserve operator starting (metrics :%d, health :%d)", metrics_port, health_port)
    operate = functools.partial(
        kopf.operator,
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=list(args.namespace),
        # With an election the candidate serves /healthz itself, leader or not.
        liveness_endpoint=None
        if candidate
        else f"http://{settings.bind_address}:{health_port}/healthz",
        standalone=True,
    )
    if candidate is None:
        asyncio.run(operate())
        return 0
    health = (settings.bind_address, health_port)
    return asyncio.run(
        elector.run_elected(candidate, operate, health=health, registry=metrics.registry)
    )


WATCH_SERVER_TIMEOUT = 60
"""Seconds the API server keeps one watch request open before kopf watches again.

The watches feed the indices every pass reads, so a watch that stays open but has
stopped delivering would leave the operator deciding from stale children until it
reconnects. (Suspected once when an InferenceService stayed at "1/2 ready" for four
minutes after etcd restarted; the Deployment's own status showed the simulated node had
left a pod Pending, but the bound is kept: it is cheap.) Reconnecting
every minute resumes from the last resourceVersion (or relists on 410 Gone): the cost is
one request per watched kind a minute; the gain is that staleness is bounded by a minute
plus the safety-net timer.
"""


def _configure(registry: kopf.OperatorRegistry, kubeconfig: str | None) -> None:
    """Login and settings handlers: observe-only, standalone, quiet."""
    import kopf

    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if kubeconfig is not None:
            os.environ["KUBECONFIG"] = kubeconfig
        server = in_cluster_server(os.environ)
        if server is None or kubeconfig:
            return kopf.login_with_kubeconfig(**kwargs)
        info = kopf.login_with_service_account(**kwargs)  # token, CA and namespace files
        return None if info is None else dataclasses.replace(info, server=server)

    kopf.on.login(registry=registry)(login)

    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.scanning.disabled = True
        settings.peering.standalone = True
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
        settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 30

    kopf.on.startup(registry=registry)(functools.partial(startup))
