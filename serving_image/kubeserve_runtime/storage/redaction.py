"""Credentials never reach a log line, an error message or the terminal.

A model URI can carry secrets in two places: userinfo (``https://user:pass@host/...``)
and the query string (presigned S3/GCS/Azure URLs: ``X-Amz-Signature``,
``X-Goog-Signature``, ``sig=``, ``token=``...). Which query parameters are secret
differs per provider and per version, so the whole query is replaced rather than a
list of known names. Fragments other than ``#sha256=HEX`` are replaced too: they never
leave this process, but nothing says they are not secret.

``redact_uri`` handles one URI; ``redact_text`` every URI inside free text (library
exception messages, httpx's request log lines); ``RedactingFilter`` applies the latter to
every record a logging handler writes.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

HIDDEN = "REDACTED"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SAFE_FRAGMENT = re.compile(r"^sha256=[0-9A-Fa-f]*$")


def redact_uri(uri: str) -> str:
    """The URI with userinfo, query and any fragment but ``#sha256=`` replaced."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. a malformed IPv6 host: keep only what cannot hold secrets
        return f"{uri.split('://', 1)[0]}://{HIDDEN}" if "://" in uri else HIDDEN
    userinfo, at, host = parts.netloc.rpartition("@")
    secret_fragment = bool(parts.fragment) and not _SAFE_FRAGMENT.match(parts.fragment)
    if not (at or parts.query or secret_fragment):
        return uri
    # Reassembled by hand, not with urlunsplit: for an empty host and a path starting
    # with "//" urlunsplit drops the authority's "//", so the output parsed differently
    # the second time (redaction was not idempotent). Every URI here came in as
    # "scheme://...", so it goes out the same way.
    netloc = f"{HIDDEN}@{host}" if userinfo or at else host
    query = f"?{HIDDEN}" if parts.query else ""
    fragment = f"#{HIDDEN if secret_fragment else parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}{fragment}"


def redact_text(text: str) -> str:
    """The text with every URI in it redacted."""
    return _URI.sub(lambda match: redact_uri(match.group(0)), text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts URIs in the message and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
