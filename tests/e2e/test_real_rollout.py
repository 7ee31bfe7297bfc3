"""Changes under steady load on the real node, through the InferenceService's own Service.

Each test serves example 01's iris classifier from real pods (the S3 store on the node
address, a local operator for the test's namespace) and keeps a load generator sending
V2 ``infer`` requests to the ``<isvc>`` Service's ClusterIP (kube-proxy's rules on this
host) while the change happens; every response is counted (:mod:`live_traffic`).

- A promotion and a scale-down lose nothing: zero non-2xx answers and zero connection
  errors. This is the runtime's drain (readiness false at SIGTERM, ``Connection: close``
  through ``shutdownDelaySeconds``, then the SYN filter and the accept-queue wait) and
  the operator's drain period before an old revision shrinks, measured end to end.
- A pod whose process is SIGKILLed loses at most the requests in flight on it.

The two uploads of one model are two revisions: ``model_version`` in each answer (the
revision the runtime was started with) says which one answered.
"""

from __future__ import annotations

from typing import Any

from live_traffic import (
    Load,
    Outcome,
    after,
    failures,
    in_flight_between,
    infer_url,
    kinds,
    versions,
)
from node_lab import (
    NodeLab,
    canary,
    container_pid,
    has_condition,
    kill_process,
    pod_ready,
    predictor,
    stable_revision,
    wait_until,
)

from kubeserve.builders.pod import RUNTIME_CONTAINER
from kubeserve.controller.watching import is_ready

NAME = "iris"
SETTLED = 30
"""Answers counted after a change settled, to show the new state serves."""


def _serve(
    lab: NodeLab,
    uri: str,
    replicas: int,
    rollout: dict[str, Any] | None = None,
    max_replicas: int | None = None,
) -> str:
    """Create iris from ``uri`` and wait until Ready; return its stable revision."""
    spec: dict[str, Any] = {"predictor": predictor(uri, replicas)}
    if max_replicas is not None:
        spec["predictor"]["maxReplicas"] = max_replicas
    if rollout is not None:
        spec["rollout"] = rollout
    lab.create(NAME, spec)
    revision = stable_revision(lab.wait(NAME, is_ready, "iris Ready"))
    assert revision is not None
    return revision


def _answers_from(load: Load, version: str, count: int, what: str) -> int:
    """Mark now and wait for ``count`` answers from ``version`` after it; return the mark."""
    mark = load.mark()
    load.until(lambda o: versions(after(o, mark))[version] >= count, what)
    return mark


def test_promotion_under_steady_load_fails_no_request(lab: NodeLab, iris_model: Any) -> None:
    """A 10% manual canary promoted under load: every request is answered with a 2xx.

    The Service follows the highest-weight revision, so its selector moves from the old
    stable's pods to the promoted ones; the old pods keep serving through the operator's
    drain period, then get SIGTERM and drain (keep-alive clients are told to reconnect).
    Asserted: zero failures of any kind from the Service's first answer on (before it,
    connects are refused until kube-proxy writes the new Service's rules), and after the
    old pods are gone every answer comes from the promoted revision.
    """
    v1 = lab.upload(iris_model, "iris/v1")
    v2 = lab.upload(iris_model, "iris/v2")
    with lab.operator():
        old = _serve(lab, v1, replicas=2, rollout={"canaryTrafficPercent": 10})
        url = infer_url(lab.service_url(NAME), NAME)
        with Load(url, concurrency=2) as load:
            _answers_from(load, old, SETTLED, "answers from the first revision")
            serving = load.mark()
            lab.patch(NAME, {"spec": {"predictor": {"model": {"storageUri": v2}}}})
            at10 = lab.wait(NAME, lambda o: canary(o).get("trafficPercent") == 10, "canary at 10%")
            new = str(canary(at10)["hash"])
            lab.patch(NAME, {"spec": {"rollout": {"canaryTrafficPercent": None}}})
            lab.wait(NAME, lambda o: stable_revision(o) == new and not canary(o), "promoted")
            wait_until(lambda: not lab.pods(NAME, old), "old revision's pods gone")
            settled = _answers_from(load, new, SETTLED, "answers after the old pods left")
        outcomes = load.stop()
    early = [o for o in failures(outcomes) if o.started < serving]
    print(
        f"promotion: {kinds(outcomes)} by version {versions(outcomes)}; {len(early)} "
        "refused before the Service first answered (kube-proxy's sync after Ready)"
    )
    assert failures(after(outcomes, serving)) == []
    assert set(versions(after(outcomes, settled))) == {new}
    assert versions(outcomes)[old] >= SETTLED


def test_scale_down_under_steady_load_fails_no_request(lab: NodeLab, iris_model: Any) -> None:
    """Three replicas scaled to one under load, as an autoscaler does: every request is a 2xx.

    The predictor allows 1..3 replicas (so the operator leaves the count to an autoscaler;
    none acts here, there is no metrics-server) and the test scales the revision's
    Deployment through its scale subresource, the way the HPA would. The two pods that go
    get SIGTERM while they are still endpoints of the Service; their readiness turns false
    at once and they serve on through shutdownDelaySeconds. Asserted: zero failures of any
    kind from the Service's first answers on, while they terminate and after they are
    gone. (Changing minReplicas/maxReplicas in the spec is not a scale-down here: replicas
    are part of the predictor spec, so it makes a new revision that replaces the old one.)
    """
    uri = lab.upload(iris_model, "iris/v1")
    with lab.operator():
        revision = _serve(lab, uri, replicas=1, max_replicas=3)
        deployment = str(lab.get(NAME)["status"]["revisions"]["stable"]["name"])
        lab.scale(deployment, 3)
        wait_until(lambda: len(lab.ready_pods(NAME)) == 3, "three replicas Ready")
        url = infer_url(lab.service_url(NAME), NAME)
        with Load(url, concurrency=2) as load:
            _answers_from(load, revision, SETTLED, "answers from three replicas")
            serving = load.mark()
            lab.scale(deployment, 1)
            wait_until(lambda: len(lab.pods(NAME)) == 1, "two pods terminated and gone")
            _answers_from(load, revision, SETTLED, "answers from the one replica left")
        outcomes = load.stop()
    print(f"scale-down: {kinds(outcomes)}")
    assert failures(after(outcomes, serving)) == []


CONCURRENCY = 4
CONSECUTIVE = 50
"""Answers in a row needed to say the Service routes around the dead pod: with the dead
endpoint still in kube-proxy's rules each new connection would reach it with probability
1/2, so 50 successes in a row would happen by chance with probability 2**-50."""


def _run_of_successes(outcomes: list[Outcome], length: int) -> bool:
    """Return whether the last ``length`` outcomes (by end) are all 2xx answers."""
    ordered = sorted(outcomes, key=lambda o: o.ended)
    tail = ordered[-length:]
    return len(tail) == length and not failures(tail)


def test_killed_pod_loses_only_requests_in_flight_on_it(lab: NodeLab, iris_model: Any) -> None:
    """SIGKILL one of two replicas under load: nothing is lost beyond its requests in flight.

    Load: 4 workers, each one request at a time on a new connection (``Connection:
    close``), so at most 4 requests are in flight at any moment and a request can only
    be lost by the server it reached dying. The runtime process of one pod is SIGKILLed
    from the host (a crash: no SIGTERM, no drain); the kill moment is bracketed by two
    event marks: before ``kill`` and after the process is seen dead.

    Asserted, precisely:
    - every lost request (sent, then reset or closed unanswered) was in flight on the way
      to the dying pod: it started before the pod left the Service's endpoints and ended
      after the kill. Their number is printed (runs saw 1-4). Not all were in flight at
      the kill itself: some were sent after the process was seen dead, connected, then
      reset (the kubelet restarts the container while the endpoint is still listed), so
      the loss window is kill -> endpoint removal, not the instant;
    - 503 answers are answers, not losses (a runtime not ready yet, or shedding load when
      one pod takes all of it): counted and printed, not bounded;
    - none was sent after the pod left the endpoints, and 50 answers in a row succeed
      while the killed pod is still not Ready: the Service routes around it.
    Refused connections (SYN answered by a reset or unreachable: nothing was sent, a
    client may retry) are counted and printed, not bounded: they last until kube-proxy
    drops the endpoint, which the kubelet's status update and kube-proxy's sync pace.
    """
    uri = lab.upload(iris_model, "iris/v1")
    with lab.operator():
        revision = _serve(lab, uri, replicas=2)
        url = infer_url(lab.service_url(NAME), NAME)
        with Load(url, concurrency=CONCURRENCY, keep_alive=False) as load:
            _answers_from(load, revision, SETTLED, "answers from two replicas")
            victim = lab.ready_pods(NAME)[0]
            pid = container_pid(lab.real.containerd_socket, victim, RUNTIME_CONTAINER)
            before = load.mark()
            kill_process(pid)
            dead = load.mark()
            ip = victim.status.pod_ip
            wait_until(lambda: ip not in lab.endpoints(NAME), "the dead pod left the endpoints")
            gone = load.mark()
            load.until(
                lambda o: _run_of_successes(after(o, gone), CONSECUTIVE),
                f"{CONSECUTIVE} answers in a row after the endpoint left",
            )
            still_down = not pod_ready(
                lab.core.read_namespaced_pod(victim.metadata.name, lab.namespace)
            )
        outcomes = load.stop()
    tally = kinds(outcomes)
    broken = [o for o in failures(outcomes) if o.kind != "refused"]
    print(f"kill: {tally}; lost or failed: {[(o.kind, o.status, o.error) for o in broken]}")
    lost = [o for o in broken if o.kind == "lost"]
    sent_after_death = [o for o in lost if o.started > dead]
    print(f"kill: {len(lost)} lost, {len(sent_after_death)} of them sent after the death")
    assert set(lost) <= set(in_flight_between(outcomes, before, gone))
    assert still_down, "the killed pod was Ready again before the run of answers ended"


# --------------------------------------------------------------------------- progressive

FAILING_HANDLER = '''"""A custom model whose every prediction fails: the runtime answers 500."""


class Handler:
    def predict(self, data):
        raise RuntimeError("this model is broken on purpose")
'''
PROGRESSIVE = {
    "steps": [20, 50],
    "interval": "10s",
    "analysis": {"maxErrorRate": 0.01, "minRequests": 10, "failureThreshold": 1},
}
"""Two short steps; ten canary requests per window is plenty under the load below."""


def test_progressive_rollout_promotes_a_good_model_on_real_traffic(
    lab: NodeLab, gateway_url: str, iris_model: Any
) -> None:
    """Steps 20% -> 50% -> promoted, judged on the canary pods' /metrics under real load.

    The load goes through the Gateway, so the canary receives its step's share; the
    operator (no Prometheus) scrapes the canary pods at each step. Asserted: the rollout
    ends RolloutSucceeded with the new revision stable, no request failed from the moment
    the Gateway first served (before that Traefik may answer 503 while it loads the new
    route; those are counted and printed), and after the promotion every answer comes from
    the new revision.
    """
    v1 = lab.upload(iris_model, "iris/v1")
    v2 = lab.upload(iris_model, "iris/v2")
    with lab.operator():
        old = _serve(lab, v1, replicas=1, rollout=PROGRESSIVE)
        host = lab.host(NAME)
        with Load(infer_url(gateway_url, NAME), headers={"Host": host}, concurrency=2) as load:
            _answers_from(load, old, SETTLED, "the Gateway serves the first revision")
            serving = load.mark()
            lab.patch(NAME, {"spec": {"predictor": {"model": {"storageUri": v2}}}})
            done = lab.wait(
                NAME,
                lambda o: (
                    stable_revision(o) not in (None, old)
                    and not canary(o)
                    and has_condition("RolloutSucceeded")(o)
                ),
                "the rollout succeeded",
                timeout=600,
            )
            new = stable_revision(done)
            assert new is not None
            assert new != old
            settled = _answers_from(load, new, SETTLED, "answers from the promoted revision")
            _run_from(load, new, settled)
        outcomes = load.stop()
    early = [o for o in failures(outcomes) if o.started < serving]
    print(
        f"progressive promotion: {kinds(outcomes)} by version {versions(outcomes)}; "
        f"{len(early)} failures before the Gateway first served (Traefik loading the route)"
    )
    assert failures(after(outcomes, serving)) == []


def _run_from(load: Load, version: str, mark: int) -> None:
    """Wait for 50 answers in a row from ``version`` (requests started after ``mark``)."""

    def only(outcomes: list[Outcome]) -> bool:
        tail = sorted(after(outcomes, mark), key=lambda o: o.ended)[-CONSECUTIVE:]
        return len(tail) == CONSECUTIVE and all(o.version == version for o in tail)

    load.until(only, f"{CONSECUTIVE} answers in a row from {version}")


def test_progressive_rollout_rolls_back_a_failing_model_on_real_traffic(
    lab: NodeLab, gateway_url: str, iris_model: Any, tmp_path: Any
) -> None:
    """A canary whose handler raises: its 500s fail the analysis, the rollout rolls back.

    Asserted: condition RolledBack, the canary answered 500 to real requests before, and
    the rollback is visible in traffic: 50 answers in a row from the stable revision
    (with the canary at 20% under Traefik's deterministic 4:1 schedule, at most 8
    stable answers come in a row), after which no request failed.
    """
    good = lab.upload(iris_model, "iris/v1")
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    (broken_dir / "handler.py").write_text(FAILING_HANDLER)
    broken = lab.upload(broken_dir, "broken/v1")
    with lab.operator():
        stable = _serve(lab, good, replicas=1, rollout=PROGRESSIVE)
        host = lab.host(NAME)
        with Load(infer_url(gateway_url, NAME), headers={"Host": host}, concurrency=2) as load:
            _answers_from(load, stable, SETTLED, "the Gateway serves the stable revision")
            broken_predictor = predictor(broken, 1, model_format="custom")
            lab.patch(NAME, {"spec": {"predictor": broken_predictor}})
            lab.wait(NAME, has_condition("RolledBack"), "the canary rolled back", timeout=600)
            back = load.mark()
            _run_from(load, stable, back)
            settled = load.mark()
            _answers_from(load, stable, SETTLED, "answers after the rollback")
        outcomes = load.stop()
    print(f"rollback: {kinds(outcomes)} by version {versions(outcomes)}")
    before_rollback = [o for o in outcomes if o.ended < back]
    assert any(o.status == 500 for o in before_rollback), "the canary never got a request"
    assert failures(after(outcomes, settled)) == []
    assert set(versions(after(outcomes, settled))) == {stable}
