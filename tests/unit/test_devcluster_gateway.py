"""The Traefik Gateway's pure parts: its static configuration and the objects it programs."""

from __future__ import annotations

from pathlib import Path

from kubeserve.config import OperatorConfig
from kubeserve.devcluster import gateway
from kubeserve.devcluster.processes import Process


def test_traefik_listens_on_loopback_only_and_never_calls_home() -> None:
    """Both entryPoints bind 127.0.0.1; version checks and usage reports are off."""
    config = gateway.traefik_config(web_port=18000, ping_port=18001)
    addresses = [entry["address"] for entry in config["entryPoints"].values()]
    assert addresses == ["127.0.0.1:18000", "127.0.0.1:18001"]
    assert config["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert config["ping"]["entryPoint"] == "traefik"
    assert set(config["providers"]) == {"kubernetesGateway"}


def test_gateway_listener_port_is_the_entrypoint_port_and_admits_every_namespace() -> None:
    """Traefik binds a listener to the entryPoint with the same port number."""
    objects = gateway.gateway_objects(web_port=18000)
    kinds = [obj["kind"] for obj in objects]
    assert kinds == ["Namespace", "GatewayClass", "Gateway"]
    klass, gw = objects[1], objects[2]
    assert klass["spec"]["controllerName"] == gateway.CONTROLLER_NAME
    assert gw["spec"]["gatewayClassName"] == klass["metadata"]["name"]
    (listener,) = gw["spec"]["listeners"]
    assert listener["port"] == 18000
    assert listener["allowedRoutes"] == {"namespaces": {"from": "All"}}


def test_gateway_name_is_the_one_the_operator_attaches_routes_to() -> None:
    """The operator's default Gateway name is the one Traefik programs."""
    assert OperatorConfig().gateway_name == gateway.GATEWAY_NAME


def test_gateway_record_round_trips(tmp_path: Path) -> None:
    """`status` and `down` find the Gateway a previous `up` started."""
    proc = Process("traefik", 4242, ("/bin/traefik", "--configFile=x"), "/tmp/t.log", "h")
    started = gateway.Gateway(web_port=18000, ping_port=18001, process=proc)
    started.save(tmp_path)
    assert gateway.Gateway.load(tmp_path) == started
    assert started.url == "http://127.0.0.1:18000"
    assert gateway.Gateway.load(tmp_path / "missing") is None
