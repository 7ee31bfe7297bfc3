"""Scoping a custom PromQL check to its InferenceService's namespace.

Limits first: a custom query runs only when *every* series selector in it (instant or
range, inside functions, aggregations, binary operations and subqueries) carries the
exact matcher ``namespace="<the InferenceService's namespace>"``; anything else is
refused before it reaches Prometheus, naming the selector. `or` between matchers and
the ``info()`` function (which joins ``target_info`` series no selector names) are
refused too, and so is anything the parser does not know (it follows Prometheus 2.45's
grammar; newer syntax is refused, never guessed at). The scope is only as good as
Prometheus' ``namespace`` label: the Kubernetes service discovery relabelling of
PodMonitors, ServiceMonitors and the ``kubernetes-pods`` job writes the target's
namespace there, which a scraped pod cannot override unless the scrape honours its
labels (``honorLabels: true``).

Why: the operator queries Prometheus with its own access and writes the value into the
InferenceService's status and Events, which the namespace's users read. Unscoped, any
tenant could read any other namespace's series through the operator.

Why require rather than inject: the query is parsed by ``promql-parser`` (Python bindings
of the Rust crate GreptimeDB uses), and only inspected. Its printer does not round-trip
every query (``str()`` writes raw newlines inside strings and mangles `or` matchers, and
``transform`` ignores in-place edits), so rewriting the text would send Prometheus a query
the user never wrote. Requiring the matcher keeps the query exactly as written, and the
``{namespace}`` placeholder makes it one token to add.
"""

from __future__ import annotations

import promql_parser

NAMESPACE_LABEL = "namespace"
UNSCOPED_FUNCTIONS = frozenset({"info"})
"""Functions that read series no selector in the query names."""


class QueryRefused(ValueError):
    """The custom query could read series outside its namespace (or is not PromQL)."""


def _selector_problem(node: promql_parser.VectorSelector, namespace: str) -> str | None:
    """Why one selector is not confined to `namespace`, or None when it is."""
    text = node.prettify()
    if node.matchers.or_matchers:
        return f"{text} uses `or` between label matchers"
    scoped = any(
        m.name == NAMESPACE_LABEL and m.op == promql_parser.MatchOp.Equal and m.value == namespace
        for m in node.matchers.matchers
    )
    if not scoped:
        return f'{text} has no matcher {NAMESPACE_LABEL}="{namespace}"'
    return None


def unscoped_parts(query: str, namespace: str) -> list[str]:
    """Every part of `query` that could read series outside `namespace` (empty: scoped).

    Raises :class:`QueryRefused` when `query` is not PromQL.
    """
    try:
        expr = promql_parser.parse(query)
    except ValueError as exc:
        raise QueryRefused(f"not valid PromQL: {exc}") from exc
    problems: list[str] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            problem = _selector_problem(node, namespace)
            if problem is not None:
                problems.append(problem)
        elif isinstance(node, promql_parser.Call) and node.func.name in UNSCOPED_FUNCTIONS:
            problems.append(f"{node.func.name}() reads series that no selector scopes")

    promql_parser.walk(expr, pre_visit=visit)
    return problems


def require_namespace(query: str, namespace: str) -> None:
    """Refuse `query` unless every series it reads is in `namespace`."""
    problems = unscoped_parts(query, namespace)
    if problems:
        raise QueryRefused(
            "every series selector must be confined to the InferenceService's namespace "
            f'(add {NAMESPACE_LABEL}="{{namespace}}"): ' + "; ".join(problems)
        )
