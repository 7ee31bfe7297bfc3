"""The REST transport: KServe V1 and Open Inference Protocol V2 over Starlette.

Handlers are thin: read the body (bounded), decode with ``rest.v2codec``, call the
data plane, encode. ``rest.app.build_app`` wires routes, auth, metrics and access logs.
"""
