"""Traffic splits measured through the Gateway on the real node: canary, A/B, header match.

Requests go to the ``kubeserve`` Gateway (Traefik on the host, see
:mod:`kubeserve.devcluster.gateway`) with the InferenceService's status.url host as the
Host header; every answer's ``model_version`` names the revision that served it, and
the pods' own ``kubeserve_requests_total`` (port 8082, read from the host) confirms what
a pod received.

Not covered: the mirror. Traefik 3.6's Gateway API provider implements no RequestMirror
filter (``unsupported filter RequestMirror`` in pkg/provider/kubernetes/gateway/
httproute.go), so a route with ``spec.mirror`` is not served by this Gateway at all.

How exact the counts are: Traefik's weighted round robin is an earliest-deadline-first
schedule (each backend's next deadline advances by 1/weight), deterministic with no
randomness. Over any run of N consecutive requests each backend's count is therefore
within 1 of N x weight / 100, wherever the run starts in the schedule; exactly equal only
when the run starts on a cycle boundary, which a test cannot know because it must send
requests first to see that Traefik loaded the route. So the tests assert the +-1 bound
and print the exact counts (measured: exactly 180/20 and 160/40).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from live_traffic import failures, infer_url, send, versions
from node_lab import NodeLab, predictor, served_requests, stable_revision, wait_until

from kubeserve.controller.watching import is_ready

N = 200
VARIANT_HEADER = "x-model-variant"


def within_one(count: int, total: int, percent: int) -> bool:
    """Return whether ``count`` is within 1 of ``total * percent / 100``."""
    return abs(count * 100 - total * percent) <= 100


def _gateway_serves(
    lab: NodeLab, gateway_url: str, name: str, wanted: set[str], timeout: float = 240.0
) -> str:
    """Wait until 10 requests through the Gateway all succeed, from exactly ``wanted``.

    Every backend must be loaded before counting: Traefik takes each Service's endpoints
    on its own sync, and a backend seen early (a variant) says nothing of the other one
    (CI once counted 160 failures from the main predictor that way). Return the host.
    """
    host = lab.host(name)
    url = infer_url(gateway_url, name)

    def serving() -> bool:
        outcomes = send(url, 10, {"Host": host})
        return not failures(outcomes) and set(versions(outcomes)) == wanted

    wait_until(serving, f"the Gateway serves {name} from {sorted(wanted)}", timeout)
    return host


def _variant_revision(obj: dict[str, Any], variant: str) -> str:
    """Return the serving revision of an A/B variant from status.variants."""
    (found,) = [v for v in obj["status"]["variants"] if v["name"] == variant]
    return str(found["revision"])


@pytest.fixture
def models(lab: NodeLab, iris_model: Path) -> tuple[str, str]:
    """Upload the iris model twice: two URIs, so two revisions with different versions."""
    return lab.upload(iris_model, "iris/v1"), lab.upload(iris_model, "iris/v2")


def test_canary_90_10_through_the_gateway(
    lab: NodeLab, gateway_url: str, models: tuple[str, str]
) -> None:
    """A manual 10% canary: of 200 requests, 180 +- 1 answer from stable, 20 +- 1 from canary."""
    v1, v2 = models
    with lab.operator():
        lab.create("iris", {"predictor": predictor(v1), "rollout": {"canaryTrafficPercent": 10}})
        stable = stable_revision(lab.wait("iris", is_ready, "iris Ready"))
        assert stable is not None
        lab.patch("iris", {"spec": {"predictor": {"model": {"storageUri": v2}}}})
        obj = lab.wait(
            "iris",
            lambda o: is_ready(o) and len(o["status"]["revisions"]) >= 2,
            "canary Ready at 10%",
        )
        canary = str(obj["status"]["revisions"]["canary"]["hash"])
        host = _gateway_serves(lab, gateway_url, "iris", {stable, canary})
        counts = versions(send(infer_url(gateway_url, "iris"), N, {"Host": host}))
    print(f"canary 90/10 over {N}: {dict(counts)}")
    assert set(counts) == {stable, canary}
    assert within_one(counts[stable], N, 90)
    assert within_one(counts[canary], N, 10)


AB_SPEC_B = {"name": "b", "weight": 20, "match": {"headers": {VARIANT_HEADER: "b"}}}


def test_ab_80_20_and_header_match_through_the_gateway(
    lab: NodeLab, gateway_url: str, models: tuple[str, str]
) -> None:
    """A/B 80/20: 160 +- 1 and 40 +- 1 of 200; every request with the header goes to b.

    The header requests are also seen on b's pod: its request counter grows by exactly
    the number sent with the header.
    """
    a_uri, b_uri = models
    with lab.operator():
        spec = {
            "predictor": predictor(a_uri),
            "variants": [{**AB_SPEC_B, "predictor": predictor(b_uri)}],
        }
        lab.create("iris", spec)
        obj = lab.wait("iris", is_ready, "iris Ready with variant b")
        a, b = stable_revision(obj), _variant_revision(obj, "b")
        assert a is not None
        assert a != b
        host = _gateway_serves(lab, gateway_url, "iris", {a, b})
        url = infer_url(gateway_url, "iris")
        split = versions(send(url, N, {"Host": host}))
        (b_pod,) = lab.ready_pods("iris", b)
        before = served_requests(b_pod)
        by_header = versions(send(url, 50, {"Host": host, VARIANT_HEADER: "b"}))
        after = served_requests(b_pod)
    print(f"A/B 80/20 over {N}: {dict(split)}; with the header: {dict(by_header)}")
    assert within_one(split[a], N, 80)
    assert within_one(split[b], N, 20)
    assert by_header == {b: 50}
    assert after - before == 50
