"""Leader election settings and decisions: which Lease, as whom, and when it may be taken.

Limits first: these are the pure parts (flags, timings, the Lease record, the take-over
rule, the spec to write); :mod:`.elector` does the I/O, and its docstring states the
guarantees and their limits. This module imports nothing heavy, so `kubeserve --help`
stays fast.

The rule is client-go's: a candidate may write itself into a Lease it holds already, one
nobody holds (released), or one whose record it has seen unchanged for a full
`lease_duration` on its own monotonic clock; a renewal keeps `acquireTime`, a change of
holder counts one more `leaseTransitions`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LEASE_NAME = "kubeserve-operator"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Kubernetes MicroTime: RFC 3339 with exactly six fractional digits."""


@dataclass(frozen=True)
class Timings:
    """Lease timings in seconds (client-go's defaults)."""

    lease_duration: float = 15.0
    """How long a candidate waits, after last seeing the lease change, before taking it."""
    renew_deadline: float = 10.0
    """How long a leader keeps acting without a successful renewal."""
    retry_period: float = 2.0
    """Time between attempts (renewals by the leader, tries by candidates)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, "
                f"got {self.retry_period:g}s, {self.renew_deadline:g}s, {self.lease_duration:g}s"
            )


@dataclass(frozen=True)
class ElectionSettings:
    """Which Lease to hold, and as whom."""

    namespace: str
    name: str
    identity: str
    timings: Timings = Timings()


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease the election reads."""

    holder: str | None
    duration_seconds: int
    transitions: int
    acquire_time: str | None
    resource_version: str

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        """Read a Lease as the API server returns it (JSON)."""
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=spec.get("acquireTime"),
            resource_version=str(lease["metadata"]["resourceVersion"]),
        )


def is_free_for(record: LeaseRecord, identity: str, unchanged_for: float) -> bool:
    """Whether `identity` may write itself into the lease: it holds it already, nobody
    does, or the record has not changed for a full lease duration (`unchanged_for` is how
    long this candidate has seen this exact record)."""
    return record.holder in (None, identity) or unchanged_for >= record.duration_seconds


def lease_spec(
    record: LeaseRecord | None, identity: str, now: dt.datetime, timings: Timings
) -> dict[str, Any]:
    """The spec that makes `identity` the holder (acquire time and transitions as client-go
    keeps them: unchanged on renewal, new on a change of holder)."""
    stamp = now.astimezone(dt.UTC).strftime(MICRO_TIME)
    renewal = record is not None and record.holder == identity
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": math.ceil(timings.lease_duration),
        "acquireTime": record.acquire_time if renewal and record else stamp,
        "renewTime": stamp,
        "leaseTransitions": (record.transitions if record else 0) + (0 if renewal else 1),
    }


def default_identity() -> str:
    """The pod's name (``POD_NAME``, else the host name) plus a random suffix: unique per
    process, so a restarted container never mistakes its predecessor's lease for its own."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `kubeserve run` flags of leader election."""
    group = parser.add_argument_group("leader election")
    group.add_argument(
        "--leader-elect",
        action="store_true",
        help="hold a coordination.k8s.io Lease and act only while holding it "
        "(needed for more than one replica)",
    )
    group.add_argument(
        "--leader-election-namespace",
        default=None,
        help="namespace of the Lease (default: $POD_NAMESPACE, then the pod's own)",
    )
    group.add_argument("--leader-election-id", default=DEFAULT_LEASE_NAME, help="name of the Lease")
    defaults = Timings()
    for flag, default, text in (
        ("--lease-duration", defaults.lease_duration, "before a candidate takes a silent lease"),
        ("--renew-deadline", defaults.renew_deadline, "a leader acts without renewing"),
        ("--retry-period", defaults.retry_period, "between renewals and tries"),
    ):
        group.add_argument(flag, type=float, default=default, help=f"seconds {text}")


def settings_from_args(args: argparse.Namespace) -> ElectionSettings | None:
    """The election settings of `kubeserve run`, or None without --leader-elect."""
    if not args.leader_elect:
        return None
    namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not namespace:
        raise SystemExit(
            "kubeserve run: --leader-elect needs --leader-election-namespace "
            "(or POD_NAMESPACE, or a pod's service account)"
        )
    try:
        timings = Timings(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        raise SystemExit(f"kubeserve run: {exc}") from exc
    return ElectionSettings(namespace, args.leader_election_id, default_identity(), timings)
