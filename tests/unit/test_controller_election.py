"""Leader election: the take-over rule, the Lease spec, the flags and the write fence.

The election against a real API server (two operator processes, a frozen leader) is in
tests/cluster/test_leader_election.py; these are the pure parts and the fence, which
refuses writes before anything leaves the process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import urllib3
from kubernetes import client

from kubeserve.controller import election
from kubeserve.controller.election import (
    ElectionSettings,
    LeaseRecord,
    Timings,
    is_free_for,
    lease_spec,
    settings_from_args,
)
from kubeserve.controller.elector import NotLeading, fence

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def record(holder: str | None, *, transitions: int = 3, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_seconds=duration,
        transitions=transitions,
        acquire_time="2025-03-01T11:00:00.000000Z",
        resource_version="42",
    )


@pytest.mark.parametrize(
    ("holder", "unchanged_for", "free"),
    [
        ("me", 0.0, True),  # renewal
        (None, 0.0, True),  # released
        ("other", 14.9, False),  # still within the other's lease
        ("other", 15.0, True),  # seen unchanged for a whole lease duration
    ],
)
def test_lease_is_free_only_when_held_by_us_released_or_silent_for_its_duration(
    holder: str | None, unchanged_for: float, free: bool
) -> None:
    assert is_free_for(record(holder), "me", unchanged_for) is free


def test_renewal_keeps_acquire_time_and_transitions() -> None:
    spec = lease_spec(record("me"), "me", NOW, Timings())
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2025-03-01T11:00:00.000000Z",
        "renewTime": "2025-03-01T12:00:00.000000Z",
        "leaseTransitions": 3,
    }


def test_takeover_counts_a_transition_and_stamps_microseconds() -> None:
    spec = lease_spec(record("other"), "me", NOW, Timings(lease_duration=7.5, renew_deadline=5))
    assert spec["holderIdentity"] == "me"
    assert spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == spec["renewTime"] == "2025-03-01T12:00:00.000000Z"
    assert spec["leaseDurationSeconds"] == 8  # whole seconds, rounded up
    first = lease_spec(None, "me", NOW, Timings())
    assert (first["leaseTransitions"], first["acquireTime"]) == (1, first["renewTime"])


def test_lease_record_reads_api_json() -> None:
    lease = {
        "metadata": {"name": "op", "resourceVersion": "7"},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 2},
    }
    assert LeaseRecord.of(lease) == LeaseRecord(None, 1, 2, None, "7")


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0), (5, 10, 2)]
)
def test_timings_must_be_ordered(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="0 < retry period < renew deadline < lease duration"):
        Timings(lease, renew, retry)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    election.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_give_settings_with_a_unique_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setenv("POD_NAME", "kubeserve-abc")
    assert settings_from_args(parse()) is None
    args = parse(
        "--leader-elect",
        "--leader-election-namespace=ops",
        "--leader-election-id=lock",
        "--lease-duration=8",
        "--renew-deadline=6",
        "--retry-period=1",
    )
    one, two = settings_from_args(args), settings_from_args(args)
    assert isinstance(one, ElectionSettings)
    assert isinstance(two, ElectionSettings)
    assert (one.namespace, one.name, one.timings) == ("ops", "lock", Timings(8, 6, 1))
    assert one.identity.startswith("kubeserve-abc_")
    assert one.identity != two.identity


def test_lease_namespace_comes_from_the_pod_or_is_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(election, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    monkeypatch.setenv("POD_NAMESPACE", "kubeserve-system")
    settings = settings_from_args(parse("--leader-elect"))
    assert settings is not None
    assert (settings.namespace, settings.name) == ("kubeserve-system", "kubeserve-operator")
    monkeypatch.delenv("POD_NAMESPACE")
    with pytest.raises(SystemExit, match="needs --leader-election-namespace"):
        settings_from_args(parse("--leader-elect"))
    with pytest.raises(SystemExit, match="retry period < renew deadline"):
        settings_from_args(
            parse("--leader-elect", "--leader-election-namespace=x", "--retry-period=20")
        )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_fence_refuses_writes_before_sending_and_lets_reads_through() -> None:
    """A write of a non-leader never leaves the process: against a closed port a write
    that got through would fail with a connection error, not NotLeading."""
    configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    configuration.retries = 0
    leading = [False]
    api = fence(client.ApiClient(configuration), lambda: leading[0])
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
    writes: list[Callable[[], object]] = [
        lambda: core.create_namespaced_config_map("ns", body),
        lambda: core.patch_namespaced_config_map("x", "ns", {"data": {}}),
        lambda: core.delete_namespaced_config_map("x", "ns"),
    ]
    for write in writes:
        with pytest.raises(NotLeading, match="does not hold the lease"):
            write()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.read_namespaced_config_map("x", "ns", _request_timeout=5)
    leading[0] = True
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.create_namespaced_config_map("ns", body, _request_timeout=5)
    api.close()
