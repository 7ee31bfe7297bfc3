"""The real node's pure decisions: network safety, configs, the API server's address, snapshots."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from kubeserve.devcluster import certs, containerd, controlplane, hostnet, hoststate, node
from kubeserve.devcluster.modelstore import StoredModel


def test_pods_get_routes_to_services_and_the_node_only_and_no_masquerading() -> None:
    plugin = hostnet.cni_conflist(Path("/x/ipam"))["plugins"][0]
    assert plugin["ipMasq"] is False
    assert plugin["ipam"]["routes"] == [
        {"dst": hostnet.SERVICE_CIDR},
        {"dst": f"{hostnet.NODE_ADDRESS}/32"},
    ]
    assert plugin["ipam"]["dataDir"] == "/x/ipam"


def test_the_forward_guard_drops_pod_traffic_leaving_the_pod_bridge() -> None:
    rules = hostnet.guard_rules()
    assert ["-s", hostnet.POD_SUBNET, "!", "-o", hostnet.POD_BRIDGE, "-j", "DROP"] in rules[
        hostnet.FORWARD_GUARD
    ]
    input_rules = rules[hostnet.INPUT_GUARD]
    # from the pods: the node address, replies, then nothing else; the node address: lo only
    assert input_rules[2] == ["-i", hostnet.POD_BRIDGE, "-j", "DROP"]
    assert input_rules[-1] == ["-d", f"{hostnet.NODE_ADDRESS}/32", "-j", "DROP"]


def test_route_conflicts_name_the_clashing_host_route() -> None:
    routes = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "10.0.0.0/8", "dev": "vpn0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": hostnet.SERVICE_CIDR, "dev": hostnet.NODE_LINK},
    ]
    reasons = hostnet.conflicts(routes)
    assert len(reasons) == 3  # the Service range, the pod subnet and the node address
    assert all("10.0.0.0/8 via vpn0" in reason for reason in reasons)
    assert hostnet.conflicts(routes[2:]) == []


def test_containerd_config_is_private_and_clamps_oom_scores() -> None:
    paths = containerd.Paths(Path("/state/node/containerd"))
    config = tomllib.loads(containerd.config_toml(paths, Path("/state/node/cni/net.d")))
    assert config["root"] == "/state/node/containerd/root"
    assert config["grpc"]["address"] == str(containerd.SOCKET)
    assert len(f"{containerd.SOCKET}.ttrpc") < 104
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == containerd.PAUSE_IMAGE
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc == {"SystemdCgroup": False, "Root": "/state/node/containerd/state/runc"}
    assert cri["cni"]["conf_dir"] == "/state/node/cni/net.d"


def test_kubelet_is_loopback_only_without_dns_and_runs_on_cgroup_v1() -> None:
    config = node.kubelet_config(node.Layout(Path("/n")), "127.0.1.1")
    assert config["failCgroupV1"] is False
    assert config["address"] == "127.0.1.1"
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["resolvConf"] == "/n/config/resolv.conf"
    assert config["containerRuntimeEndpoint"] == f"unix://{containerd.SOCKET}"
    proxy = node.kube_proxy_config(Path("/k"), "vm")
    assert proxy["mode"] == "iptables"
    assert proxy["conntrack"]["maxPerCore"] == 0


def test_node_name_must_resolve_to_loopback() -> None:
    name, address = node.node_name("localhost")
    assert name == "localhost"
    assert ipaddress.ip_address(address).is_loopback
    with pytest.raises(node.NodeError, match="does not resolve"):
        node.node_name("no-such-host.invalid")


def test_a_real_node_api_server_binds_and_advertises_the_node_address() -> None:
    layout = controlplane.Layout(Path("/c"))
    loopback = controlplane.apiserver_args(Path("kube-apiserver"), layout, 2379, 6443)
    assert "--endpoint-reconciler-type=none" in loopback
    assert "--bind-address=127.0.0.1" in loopback
    real = controlplane.apiserver_args(
        Path("kube-apiserver"), layout, 2379, 6443, hostnet.NODE_ADDRESS
    )
    assert f"--bind-address={hostnet.NODE_ADDRESS}" in real
    assert f"--advertise-address={hostnet.NODE_ADDRESS}" in real
    assert "--endpoint-reconciler-type=lease" in real


def test_the_serving_certificate_names_the_node_address() -> None:
    pki = certs.generate(extra_ips=(hostnet.NODE_ADDRESS,))
    cert = x509.load_pem_x509_certificate(pki.apiserver.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "10.0.0.1", hostnet.NODE_ADDRESS}


def _snapshot(**changes: object) -> hoststate.Snapshot:
    base: dict[str, object] = {
        "links": ("eth0", "lo"),
        "netns": (),
        "mounts": (),
        "firewall": {"iptables": (), "ip6tables": ()},
        "nft_tables": (),
        "sysctls": {"net.ipv4.ip_forward": "0"},
        "cgroups": ("/sys/fs/cgroup/memory/user",),
        "paths": (),
    }
    return hoststate.Snapshot.from_json({**base, **changes})


def test_snapshot_differences_list_every_change_and_nothing_else() -> None:
    before = _snapshot()
    assert hoststate.differences(before, _snapshot()) == []
    after = _snapshot(
        links=("eth0", "ks-node0", "lo"),
        firewall={"iptables": ("*filter", ":KUBE-FIREWALL -"), "ip6tables": ()},
        sysctls={"net.ipv4.ip_forward": "1"},
        cgroups=("/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/memory/user"),
    )
    assert hoststate.differences(before, after) == [
        "links: + ks-node0",
        "cgroups: + /sys/fs/cgroup/memory/kubepods",
        "iptables: + *filter",
        "iptables: + :KUBE-FIREWALL -",
        "sysctl net.ipv4.ip_forward: 0 -> 1",
    ]
    assert hoststate.Snapshot.from_json(after.to_json()) == after


def test_saved_rules_lose_comments_and_counters() -> None:
    saved = "# Generated by iptables\n*filter\n:INPUT ACCEPT [12:345]\n-A INPUT -j X\nCOMMIT\n"
    assert hoststate.normalise_rules(saved) == (
        "*filter",
        ":INPUT ACCEPT",
        "-A INPUT -j X",
        "COMMIT",
    )


def test_a_stored_model_points_the_predictor_at_s3_and_its_secret() -> None:
    stored = StoredModel("s3://models/ns/iris", {"AWS_ENDPOINT_URL": "http://10.250.0.1:1"})
    isvc = {"spec": {"predictor": {"minReplicas": 1, "model": {"storageUri": "s3://x/y"}}}}
    changed = stored.apply_to(isvc, "creds")
    assert changed["spec"]["predictor"]["model"] == {
        "storageUri": "s3://models/ns/iris",
        "storageSecretRef": {"name": "creds"},
    }
    assert isvc["spec"]["predictor"]["model"] == {"storageUri": "s3://x/y"}
    assert stored.secret("creds", "ns")["stringData"] == stored.secret_data


def test_a_cluster_folder_too_deep_for_kubelets_sockets_is_refused_with_the_reason() -> None:
    """kubelet binds <root-dir>/pod-resources/<10 digits>; a longer path than a unix socket
    allows is refused before anything starts (kubelet itself only says "invalid argument")."""
    shallow = node.Layout(Path("/tmp/ks-up-x/cluster") / node.NODE_FOLDER)
    assert node.socket_path_problem(shallow) is None
    deep = node.Layout(Path("/tmp") / ("d" * 80) / "cluster" / node.NODE_FOLDER)
    problem = node.socket_path_problem(deep)
    assert problem is not None
    assert "KUBESERVE_CLUSTER_DIR" in problem
    assert "> 107 characters" in problem
