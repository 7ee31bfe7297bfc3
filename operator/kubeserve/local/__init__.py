"""``kubeserve local -f isvc.yaml``: run an InferenceService's predictors on this machine.

No cluster needed. The file is validated and rendered exactly as ``kubeserve render``
does (same API models, same rollout decision, same builders), and each predictor
Deployment of the result becomes one local ``kubeserve-runtime serve`` process:

- the model is fetched with the Deployment's storage-initializer arguments
  (``kubeserve-runtime download URI DIR``) into a work folder, unless ``--model-dir``
  points at a ready folder; ``--model-uri`` replaces the storageUri (e.g. ``file://``);
- the runtime gets the serving container's arguments and literal environment, so the
  settings are the pod's (one source of truth: the builders). Only what cannot be the
  same outside a pod is replaced: the model folder, the ports, the bind address
  (127.0.0.1), the bearer-token file (``--auth-token-file``); variables that come from
  Secrets or ConfigMaps (``valueFrom``) are left out with a note. ``KUBESERVE_*``
  variables of the calling shell are not inherited, so they cannot change the settings.
- ports: component *i* (the main predictor first, then the variants in spec order) gets
  REST ``PORT+3i``, gRPC ``PORT+3i+1`` and metrics ``PORT+3i+2``, so the first one has
  the pod's 8080/8081/8082; ``--port 0`` picks free ports instead.

There is no local router: traffic weights and header matches apply in the cluster; each
component prints its own URL. Ctrl-C or SIGTERM stops the runtimes (they drain
in-flight requests) and removes the temporary work folder. Model URIs are printed
redacted (no userinfo, query or secret fragment), as the storage initializer logs them.

The modules, top-down (each imports only modules below it; tests/unit/test_package_order.py
checks):

- :mod:`.commands`: the ``kubeserve local`` subcommand (arguments, the run, signals);
- :mod:`.harness`: ``LocalProcess``, the command as a subprocess for the demo and tests;
- :mod:`.console`: what the command prints (progress, the ready message and its
  fixed lines, which the harness parses);
- :mod:`.samples`: curl commands for a first prediction;
- :mod:`.supervisor`: fetching models, starting, watching and stopping the runtimes;
- :mod:`.settings`: the pod's settings as a local process's environment and commands;
- :mod:`.predictors`: which predictors to run, read from the rendered Deployments;
- :mod:`.ports`: which ports each runtime gets;
- :mod:`.errors`: the one error type, whose message says why and what to do.
"""
