"""Where the operator finds the API server in a pod: the Service environment, not DNS."""

from __future__ import annotations

import pytest

from kubeserve.controller.run import in_cluster_server


@pytest.mark.parametrize(
    ("env", "server"),
    [
        (
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            "https://10.0.0.1:443",
        ),
        (
            {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
            "https://[fd00::1]:443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),
        ({}, None),
    ],
    ids=["ipv4", "ipv6", "no-port", "outside-a-pod"],
)
def test_in_cluster_server_comes_from_the_service_environment(
    env: dict[str, str], server: str | None
) -> None:
    assert in_cluster_server(env) == server
