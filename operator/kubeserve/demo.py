"""The demo behind ``make demo``: the first example, in a cluster and on this machine.

Steps, each announced before it runs and reproducible by hand:

1. a control plane: ``$KUBECONFIG`` when it reaches a cluster (used as is, e.g. by the
   tests), else the local one of ``kubeserve cluster up`` (reused when running; the
   first build compiles it from source, about 11 minutes);
2. the CRDs from crds/, a namespace (``KUBESERVE_DEMO_NAMESPACE``, default
   ``kubeserve-demo``) and the operator (``kubeserve run`` in the background, log in a file);
3. the iris model (examples/01-sklearn-iris/make_model.py);
4. ``kubectl apply`` of examples/01-sklearn-iris/isvc.yaml, printing ``kubectl get isvc``
   each time the object changes until it is Ready (KWOK simulates the node, so pods
   turn Running without running the container);
5. the same example with ``kubeserve local`` (model given as a ``file://`` URI, fetched
   like the init container does) and one V1 and one V2 prediction, answers printed.

Where a real kubelet node can run (root, the packages of ``kubeserve cluster
prepare-host``; :func:`kubeserve.nodedemo.reasons`), steps 1 and 4-5 happen on it
instead: ``kubeserve cluster up --real-node`` (building what is missing), the model in an
S3 store the pods download from, predictions from the pod through its Service and
through the Gateway, then a 10% canary of a retrained model and the split it gets over
50 requests. Elsewhere the demo says why and runs the steps above.

The demo stops the operator and the local runtime itself and ends by printing how to
stop the control plane. ``KUBESERVE_DEMO_WORKDIR`` moves the model and logs (default:
the example's model/ folder and ~/.cache/kubeserve/demo).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeserve_runtime.contract import GRPC_PORT, HTTP_PORT, METRICS_PORT

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "01-sklearn-iris"
ISVC_NAME = "iris"
SPECIES = ("setosa", "versicolor", "virginica")
"""Class names of the iris data set, in label order."""
FLOWER = [5.1, 3.5, 1.4, 0.2]
"""Sepal/petal length and width (cm) of the first iris in the data set (a setosa)."""
READY_TIMEOUT = 180.0


def step(title: str) -> None:
    """Print a step header."""
    print(f"\n==> {title}", flush=True)


def show(command: list[str]) -> None:
    """Print a command as the user would type it."""
    print(f"$ {shlex.join(command)}", flush=True)


def indent(text: str) -> None:
    """Print command output, indented."""
    for line in text.rstrip().splitlines():
        print(f"    {line}", flush=True)


def cli_path(name: str) -> str:
    """How to call one of our console scripts: the venv's, relative to the cwd when inside."""
    path = Path(sys.executable).parent / name
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Demo:
    """Runs the steps; remembers what it started so it can stop it."""

    def __init__(self) -> None:
        workdir = os.environ.get("KUBESERVE_DEMO_WORKDIR")
        base = Path(workdir) if workdir else Path.home() / ".cache" / "kubeserve" / "demo"
        self.logs = base
        self.model_dir = base / "model" if workdir else EXAMPLE / "model"
        self.namespace = os.environ.get("KUBESERVE_DEMO_NAMESPACE", "kubeserve-demo")
        self.kubeconfig = Path()
        self.external = False
        self.on_real_node = False
        self.kubectl = ""

    def cluster(self) -> None:
        """Use $KUBECONFIG's cluster or start (or reuse) the local control plane."""
        from kubeserve.devcluster import build, controlplane, session

        existing = session.existing_kubeconfig()
        if existing is not None:
            step(f"using the cluster of KUBECONFIG={existing}")
            local = controlplane.Layout(controlplane.state_dir()).kubeconfig
            self.kubeconfig, self.external = existing, existing.resolve() != local.resolve()
        else:
            step("starting the local control plane (kubeserve cluster up)")
            missing = build.missing()
            if missing:
                names = ", ".join(item.key for item in missing)
                print(
                    f"building from source with Go, once: {names}\n"
                    "a cold build takes about 11 minutes on 2 cores; later runs start in seconds",
                    flush=True,
                )
                build.ensure_built(log=lambda line: print(f"    {line}", flush=True))
            started = time.monotonic()
            cluster = controlplane.up()
            self.kubeconfig = cluster.kubeconfig
            print(
                f"control plane ready in {controlplane.elapsed(started)} at {cluster.server}\n"
                f"export KUBECONFIG={shlex.quote(str(self.kubeconfig))}",
                flush=True,
            )
        self.kubectl = str(build.binary("kubectl"))
        step("installing the InferenceService CRD (crds/)")
        files = controlplane.repo_crd_files()
        show(["kubectl", "apply", "--server-side", *[a for f in files for a in ("-f", str(f))]])
        controlplane.install_crds(self.kubeconfig, files)
        print("    CRD established", flush=True)

    def run_kubectl(self, *args: str, stdin: str | None = None, echo: bool = True) -> str:
        """Run the built kubectl against the demo cluster; print the command and its output."""
        from kubeserve.devcluster.controlplane import kubectl

        if echo:
            show(["kubectl", *args])
        out = kubectl(self.kubeconfig, *args, stdin=stdin)
        if echo:
            indent(out)
        return out

    def namespace_up(self) -> None:
        """Create the demo namespace when missing."""
        import yaml

        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        self.run_kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def make_model(self) -> None:
        """Train the iris model with the example's script."""
        step("training the iris model (examples/01-sklearn-iris/make_model.py)")
        command = [sys.executable, str(EXAMPLE / "make_model.py"), "--out", str(self.model_dir)]
        show(["python", *command[1:]])
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        indent(result.stdout)

    def apply_and_wait(self) -> None:
        """Apply the example and print `kubectl get isvc` at each change until Ready."""
        from kubeserve.controller.watching import is_ready

        step("applying examples/01-sklearn-iris/isvc.yaml")
        self.run_kubectl("apply", "-n", self.namespace, "-f", str(EXAMPLE / "isvc.yaml"))
        self.wait_for("READY", is_ready)
        step("what the operator created")
        self.run_kubectl(
            "get",
            "deployments,services,hpa,httproutes",
            "-n",
            self.namespace,
            "-l",
            f"serving.kubeserve.io/inferenceservice={ISVC_NAME}",
        )
        print(
            "    (KWOK simulates the node: pods report Running without running the container,\n"
            "     so next the same predictor runs for real on this machine)",
            flush=True,
        )

    def local_prediction(self) -> None:
        """Run the example with `kubeserve local` and send one V1 and one V2 prediction."""
        import httpx

        from kubeserve.local.harness import LocalProcess

        step("running the same InferenceService on this machine (kubeserve local)")
        args = [
            "-f",
            str(EXAMPLE / "isvc.yaml"),
            "--model-uri",
            self.model_dir.resolve().as_uri(),
            "--port",
            str(HTTP_PORT) if _free(HTTP_PORT, GRPC_PORT, METRICS_PORT) else "0",
        ]
        show(["kubeserve", "local", *args])
        local = LocalProcess(*args, echo=lambda line: print(f"    {line}", flush=True))
        try:
            url = local.urls(1)["predictor"]
            step("asking the model about one flower")
            v1_body = {"instances": [FLOWER]}
            show(["curl", "-s", f"{url}/v1/models/{ISVC_NAME}:predict", "-d", json.dumps(v1_body)])
            v1 = httpx.post(f"{url}/v1/models/{ISVC_NAME}:predict", json=v1_body, timeout=10)
            v1.raise_for_status()
            indent(v1.text)
            label = int(v1.json()["predictions"][0])
            print(f"    prediction: class {label} = {SPECIES[label]}", flush=True)
            v2_body = {
                "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": FLOWER}]
            }
            show(["curl", "-s", f"{url}/v2/models/{ISVC_NAME}/infer", "-d", json.dumps(v2_body)])
            v2 = httpx.post(f"{url}/v2/models/{ISVC_NAME}/infer", json=v2_body, timeout=10)
            v2.raise_for_status()
            indent(v2.text)
        finally:
            step("stopping kubeserve local")
            local.stop()

    def wait_for(self, what: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Print `kubectl get isvc` at each change until ``done``; return the object."""
        from kubernetes import config

        from kubeserve.controller.watching import wait_isvc

        step(f"waiting for {what} (kubectl get isvc -n {self.namespace} --watch)")
        last = ""

        def changed(obj: dict[str, Any]) -> bool:
            nonlocal last
            table = self.run_kubectl("get", "isvc", ISVC_NAME, "-n", self.namespace, echo=False)
            if table != last:
                indent(table if not last else table.splitlines()[-1])
                last = table
            return done(obj)

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            return wait_isvc(api, self.namespace, ISVC_NAME, changed, what, timeout=READY_TIMEOUT)
        finally:
            api.close()

    def real_node(self) -> int:
        """The demo on a real node: a pod's prediction through the Gateway, then a canary."""
        from kubeserve import nodedemo
        from kubeserve.controller.process import OperatorProcess
        from kubeserve.controller.watching import is_ready
        from kubeserve.devcluster import build, controlplane, gateway
        from kubeserve.devcluster.modelstore import ModelStore

        step("a real kubelet node on this machine (kubeserve cluster up --real-node)")
        self.on_real_node = True
        with nodedemo.real_node(lambda line: print(f"    {line}", flush=True)) as (real, gw):
            self.kubeconfig, self.kubectl = real.kubeconfig, str(build.binary("kubectl"))
            print(f"    Gateway {gw.url}; export KUBECONFIG={real.kubeconfig}", flush=True)
            controlplane.install_crds(self.kubeconfig, controlplane.repo_crd_files())
            self.namespace_up()
            step(f"starting the operator for namespace {self.namespace} (kubeserve run)")
            env = {"KUBESERVE_OPERATOR_GATEWAY_NAMESPACE": gateway.GATEWAY_NAMESPACE}
            with (
                ModelStore(real.address) as store,
                OperatorProcess(
                    self.kubeconfig,
                    self.logs / "operator.log",
                    namespaces=[self.namespace],
                    env=env,
                ),
            ):
                step(f"training the iris model and uploading it to S3 at {store.endpoint}")
                make = EXAMPLE / "make_model.py"
                stored = nodedemo.upload_model(store, make, self.logs / "models", "iris/v1")
                self.run_kubectl(
                    "apply",
                    "-n",
                    self.namespace,
                    "-f",
                    "-",
                    stdin=nodedemo.manifest(stored.secret(nodedemo.SECRET_NAME, self.namespace)),
                )
                example = yaml_load(EXAMPLE / "isvc.yaml")
                step(f"applying examples/01-sklearn-iris/isvc.yaml with storageUri {stored.uri}")
                stable = nodedemo.isvc_with_model(example, stored.uri, None)
                self.run_kubectl(
                    "apply", "-n", self.namespace, "-f", "-", stdin=nodedemo.manifest(stable)
                )
                obj = self.wait_for("READY", is_ready)
                self.predict_real(obj, gw.url)
                step("a canary: a retrained model at 10% of the traffic")
                retrained = nodedemo.upload_model(store, make, self.logs / "models", "iris/v2")
                canary = nodedemo.isvc_with_model(example, retrained.uri, nodedemo.CANARY_PERCENT)
                self.run_kubectl(
                    "apply", "-n", self.namespace, "-f", "-", stdin=nodedemo.manifest(canary)
                )
                obj = self.wait_for("the canary's pods", _canary_ready)
                host = nodedemo.host_header(obj)
                canary_hash = obj["status"]["revisions"]["canary"]["hash"]
                nodedemo.await_version(gw.url, host, ISVC_NAME, _v2_body(), canary_hash)
                counts = nodedemo.count_versions(
                    gw.url, host, ISVC_NAME, _v2_body(), nodedemo.CANARY_REQUESTS
                )
                revisions = obj["status"]["revisions"]
                for role in ("stable", "canary"):
                    version = revisions[role]["hash"]
                    share = revisions[role].get("trafficPercent")
                    print(
                        f"    {role:6} revision {version}: {counts.get(version, 0)} of "
                        f"{nodedemo.CANARY_REQUESTS} requests (route weight {share}%)",
                        flush=True,
                    )
        return 0

    def predict_real(self, obj: dict[str, Any], gateway_url: str) -> None:
        """Ask the pod through its ClusterIP Service (V1, V2) and through the Gateway."""
        import httpx

        ip = self.run_kubectl(
            "get", "service", ISVC_NAME, "-n", self.namespace, "-o", "jsonpath={.spec.clusterIP}"
        ).strip()
        step(f"asking the pod about one flower through its Service ({ip})")
        v1_body = {"instances": [FLOWER]}
        url = f"http://{ip}:8080"
        show(["curl", "-s", f"{url}/v1/models/{ISVC_NAME}:predict", "-d", json.dumps(v1_body)])
        from kubeserve import nodedemo

        # Ready means the pod is ready; kube-proxy writes the Service's rules a moment
        # later, and Traefik loads a new route on its next sync: both answers are awaited.
        v1 = nodedemo.answered(
            lambda: httpx.post(f"{url}/v1/models/{ISVC_NAME}:predict", json=v1_body, timeout=10)
        )
        indent(v1.text)
        label = int(v1.json()["predictions"][0])
        print(f"    prediction: class {label} = {SPECIES[label]}", flush=True)

        host = nodedemo.host_header(obj)
        step(f"the same through the Gateway (Host: {host})")
        path = f"/v2/models/{ISVC_NAME}/infer"
        show(["curl", "-s", "-H", f"Host: {host}", f"{gateway_url}{path}", "-d", "..."])
        v2 = nodedemo.answered(
            lambda: httpx.post(
                f"{gateway_url}{path}", json=_v2_body(), headers={"Host": host}, timeout=10
            )
        )
        indent(v2.text)

    def farewell(self) -> None:
        """Say what is still running and how to stop it."""
        step("done")
        if self.on_real_node:
            print(
                "The operator and the S3 model store are stopped (a pod that restarts now "
                "cannot fetch its model).\nThe real node, its control plane and the Gateway "
                "keep running. Look around:\n"
                f'  eval "$({cli_path("kubeserve")} cluster env)"\n'
                f"  kubectl get isvc,pods -n {self.namespace} -o wide\n"
                "Stop everything and restore the host (links, firewall chains, sysctls):\n"
                f"  {cli_path('kubeserve')} cluster down",
                flush=True,
            )
            return
        print("The operator and the local runtime are stopped.", flush=True)
        if self.external:
            print(
                f"Your cluster (KUBECONFIG={self.kubeconfig}) was left running. To remove the "
                f"demo's objects:\n  kubectl delete namespace {self.namespace}",
                flush=True,
            )
            return
        print(
            "The control plane keeps running, with the InferenceService in it. Look around:\n"
            f'  eval "$({cli_path("kubeserve")} cluster env)"\n'
            f"  kubectl get isvc -n {self.namespace}\n"
            "Stop everything:\n"
            f"  {cli_path('kubeserve')} cluster down",
            flush=True,
        )


def _v2_body() -> dict[str, Any]:
    """Return the V2 request for :data:`FLOWER`."""
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": FLOWER}]}


def _canary_ready(obj: dict[str, Any]) -> bool:
    """Whether the newest generation is reconciled and its canary revision has a ready pod."""
    canary = ((obj.get("status") or {}).get("revisions") or {}).get("canary") or {}
    generation = obj["metadata"].get("generation")
    return (obj.get("status") or {}).get("observedGeneration") == generation and bool(
        canary.get("readyReplicas")
    )


def yaml_load(path: Path) -> dict[str, Any]:
    """Return the one YAML document in ``path``."""
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _free(*ports: int) -> bool:
    """Whether every port is free on 127.0.0.1."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def main() -> int:
    """Run the demo and return its exit status."""
    from kubeserve import nodedemo
    from kubeserve.controller.process import OperatorProcess

    demo = Demo()
    demo.logs.mkdir(parents=True, exist_ok=True)
    why_not = nodedemo.reasons()
    if not why_not:
        try:
            status = demo.real_node()
        except KeyboardInterrupt:
            print("\ninterrupted", flush=True)
            return 130
        except Exception as exc:
            print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            print(f"operator log: {demo.logs / 'operator.log'}", file=sys.stderr, flush=True)
            print(f"stop the node: {cli_path('kubeserve')} cluster down", file=sys.stderr)
            return 1
        demo.farewell()
        return status
    step("no real node here, so the node is simulated (KWOK): " + "; ".join(why_not))
    operator: OperatorProcess | None = None
    try:
        demo.cluster()
        step(f"starting the operator for namespace {demo.namespace} (kubeserve run)")
        demo.namespace_up()
        log = demo.logs / "operator.log"
        operator = OperatorProcess(demo.kubeconfig, log, namespaces=[demo.namespace])
        show(["kubeserve", "run", "--namespace", demo.namespace])
        operator.start()
        print(f"    operator healthy (pid {operator.pid}); log: {log}", flush=True)
        demo.make_model()
        demo.apply_and_wait()
        demo.local_prediction()
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    except Exception as exc:
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if operator is not None:
            print(f"operator log: {operator.log_path}", file=sys.stderr, flush=True)
        if not demo.external:
            print(f"stop the control plane: {cli_path('kubeserve')} cluster down", file=sys.stderr)
        return 1
    finally:
        if operator is not None:
            operator.stop()
    demo.farewell()
    return 0


if __name__ == "__main__":
    sys.exit(main())
