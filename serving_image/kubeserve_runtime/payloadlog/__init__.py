"""Payload logging: every sampled prediction (request and response) to HTTP, S3, stdout.

Limits: delivery is best effort and never slows the request path: bounded queues,
background sender threads, retries with backoff, drops counted by reason
(``kubeserve_payload_events_dropped_total{sink,reason}``). ``logger`` has the
request-path cost, ``sender`` delivery, ``event`` the events' shape, ``config`` the
settings. Nothing is imported here, so reading the settings stays cheap.
"""
