"""``kubeserve render -f isvc.yaml``: print the children the operator would apply.

No cluster needed. Each InferenceService in the file is validated with the API models
(the same rules the API server enforces, with the same messages), the rollout decision
computes its traffic plan (from its status when the file was exported from a cluster,
else the initial plan: each predictor's current revision at its spec weight), and the
builders turn that into objects, printed as multi-document YAML for GitOps review and
debugging. Operator settings come from the same ``KUBESERVE_OPERATOR_*`` environment
as the operator's, so the output matches a given installation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # the heavy imports happen when the command runs, not at registration
    from pydantic import ValidationError

    from kubeserve.config import OperatorConfig


class RenderError(ValueError):
    """The input cannot be rendered; the message says why and where."""


def _location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted path with [i] indexes."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<object>"


def describe(error: ValidationError) -> str:
    """One line per problem: `path: message`."""
    return "\n".join(
        f"  {_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
    )


def documents(stream: TextIO, source: str) -> Iterator[dict[str, Any]]:
    """The non-empty YAML documents of a stream, each checked to be an InferenceService."""
    import yaml

    from kubeserve_runtime.contract import API_VERSION, KIND

    try:
        docs = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{source}: invalid YAML: {exc}") from exc
    if not docs:
        raise RenderError(f"{source}: no InferenceService found")
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) != (
            API_VERSION,
            KIND,
        ):
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise RenderError(
                f"{source}: document {index + 1} is {kind!r}, not an {API_VERSION} {KIND}"
            )
        yield doc


def render_object(
    obj: Mapping[str, Any], config: OperatorConfig, now: dt.datetime
) -> list[dict[str, Any]]:
    """The children of one InferenceService object."""
    from pydantic import ValidationError

    from kubeserve.api.v1alpha1 import InferenceService
    from kubeserve.builders import RouteUnsupported, build_children
    from kubeserve.rollout.decision import Observed, Policy, decide
    from kubeserve.rollout.state import RolloutState

    name = (obj.get("metadata") or {}).get("name", "?")
    try:
        isvc = InferenceService.model_validate(obj)
    except ValidationError as exc:
        raise RenderError(f"InferenceService {name!r} is invalid:\n{describe(exc)}") from exc
    state = RolloutState.from_status(obj.get("status"))
    decision = decide(Policy.from_spec(obj["spec"]), state, Observed(), now)
    try:
        return build_children(isvc, decision.plan, decision.predictors, config)
    except RouteUnsupported as exc:
        raise RenderError(f"InferenceService {name!r}: route not expressible: {exc}") from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `render` subcommand."""
    parser = sub.add_parser(
        "render",
        help="print the objects the operator would create for an InferenceService (no cluster)",
    )
    parser.add_argument(
        "-f", "--filename", required=True, help="InferenceService YAML file, or - for stdin"
    )
    parser.add_argument(
        "--ingress-mode",
        choices=["gateway", "nginx", "none"],
        help="route kind (default: KUBESERVE_OPERATOR_INGRESS_MODE or gateway)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Render the file's InferenceServices to stdout; errors to stderr, exit 1."""
    import yaml
    from pydantic import ValidationError

    from kubeserve.config import OperatorConfig

    try:
        config = OperatorConfig()
    except ValidationError as exc:
        print(f"error: operator settings are invalid:\n{describe(exc)}", file=sys.stderr)
        return 1
    if args.ingress_mode:
        config = config.model_copy(update={"ingress_mode": args.ingress_mode})
    now = dt.datetime.now(dt.UTC)
    try:
        if args.filename == "-":
            objs = list(documents(sys.stdin, "<stdin>"))
        else:
            with open(args.filename, encoding="utf-8") as stream:
                objs = list(documents(stream, args.filename))
        children = [child for obj in objs for child in render_object(obj, config, now)]
    except OSError as exc:
        print(f"error: {args.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if any(not (o.get("metadata") or {}).get("uid") for o in objs):
        print(
            "note: metadata.uid is unknown outside the cluster; ownerReferences are left "
            "out (the operator sets them)",
            file=sys.stderr,
        )
    sys.stdout.write(yaml.safe_dump_all(children, sort_keys=False))
    return 0
