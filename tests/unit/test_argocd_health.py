"""The Argo CD health check (docs/argocd/health.lua) run by a real Lua 5.1 interpreter
(Argo CD's gopher-lua speaks 5.1) on statuses the operator wrote in the cluster tests.

The fixtures in tests/unit/statuses/ were captured by the cluster tests
(tests/cluster/test_rollout.py and test_drift.py call ``capture`` where they check each
state; run them with ``KUBESERVE_CAPTURE_STATUSES=$PWD/tests/unit/statuses`` to write
them again). The cases the operator cannot be caught in (an unobserved generation, no
status yet, a failed pass) are made from those captures, in the test, field by field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from lupa import lua51

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "docs" / "argocd" / "health.lua").read_text()
STATUSES = Path(__file__).parent / "statuses"


def captured(name: str) -> dict[str, Any]:
    """A status captured from the cluster tests."""
    obj: dict[str, Any] = json.loads((STATUSES / f"{name}.json").read_text())
    return obj


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(hs.status, hs.message) as Argo CD would compute them for `obj`."""
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT)
    return str(hs["status"]), str(hs["message"])


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """A condition of a captured status."""
    found: dict[str, Any] = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return found


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("ready", "Healthy", "Ready"),
        ("drift-detected", "Healthy", "Ready"),  # drift informs, it does not degrade
        ("canary-progressing", "Progressing", "Reconciling"),
        ("rolled-back", "Degraded", "Stalled"),
        ("route-refused", "Degraded", "Stalled"),
    ],
)
def test_captured_statuses_map_to_argo_health(name: str, status: str, reason: str) -> None:
    """Each captured status: its Argo health, and the message of the condition behind it."""
    obj = captured(name)
    cond = condition(obj, reason)
    expected = cond["message"] if status == "Healthy" else f"{cond['reason']}: {cond['message']}"
    assert health(obj) == (status, expected)


def test_a_manual_canary_holding_its_share_is_suspended() -> None:
    """Ready, no Reconciling, a canary with traffic: it waits for a person to promote it."""
    obj = captured("manual-canary")
    canary = obj["status"]["revisions"]["canary"]
    assert health(obj) == (
        "Suspended",
        f"canary {canary['hash']} holds {canary['trafficPercent']}% of the traffic "
        "until it is promoted",
    )


def test_an_unobserved_generation_is_progressing_whatever_the_conditions_say() -> None:
    """A spec edit the operator has not seen yet: the old Ready=True says nothing."""
    obj = captured("ready")
    obj["metadata"]["generation"] += 1
    assert health(obj) == (
        "Progressing",
        f"Waiting for the kubeserve operator to observe generation {obj['metadata']['generation']}",
    )


def test_no_status_yet_is_progressing() -> None:
    """Just applied: the operator has written nothing."""
    obj = captured("ready")
    del obj["status"]
    assert health(obj)[0] == "Progressing"


def test_a_failed_pass_is_degraded_and_not_ready_is_progressing() -> None:
    """Ready=False from a failed reconcile pass (the operator's ReconcileError) is Degraded;
    Ready=False while replicas start is Progressing."""
    obj = captured("ready")
    ready = condition(obj, "Ready")
    ready.update(status="False", reason="ReconcileError", message="403 forbidden")
    assert health(obj) == ("Degraded", "ReconcileError: 403 forbidden")
    waiting = copy.deepcopy(obj)
    condition(waiting, "Ready").update(reason="PredictorNotReady", message="0/1 ready")
    assert health(waiting) == ("Progressing", "PredictorNotReady: 0/1 ready")
