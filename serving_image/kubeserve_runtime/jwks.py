"""The token issuer's signing keys: its OIDC discovery document and JWKS, cached.

Limits first: keys are fetched over HTTPS (or loopback HTTP in tests) with httpx; a
fetch that fails keeps the keys already held, so an unreachable issuer only matters for
keys it added since. A token whose ``kid`` is not held makes the cache refresh at once,
but at most once per ``min_refresh_seconds`` however many such tokens arrive (a stream
of made-up ``kid``s must not become a stream of fetches to the issuer); tokens in
between are refused as signed by an unknown key. Held keys are refreshed in the
background once older than ``max_age_seconds``, so a key the issuer removed stops
being accepted within about that long. Symmetric (``oct``) keys and keys PyJWT cannot
use are ignored: a public JWKS never holds a shared secret.

The discovery document is read once, at ``start``, which retries failures that may pass
(no connection, 5xx) for ``START_DEADLINE_SECONDS`` and gives up at once on a 4xx answer
(such as the 403 of a ServiceAccount without the discovery role): it names the issuer
(the ``iss`` every token must carry, when the configuration does not fix it) and the
JWKS address (unless ``jwks_url`` overrides it: inside a cluster the document names the
API server's public address, the runtime reads the keys from the in-cluster one). Each
fetch from the discovery document's origin (and no other) sends the bearer token read
from ``token_file`` at that moment (the pod's own
rotating ServiceAccount token: kube-apiserver serves these documents to ServiceAccounts
only). PyJWT parses the keys; nothing here does cryptography.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)
FETCH_TIMEOUT_SECONDS = 10.0
START_DEADLINE_SECONDS = 60.0
"""How long ``start`` keeps trying (a new pod's network may need a moment)."""


class KeysUnavailable(Exception):
    """The discovery document or the JWKS cannot be fetched or read."""


class IssuerUnreachable(KeysUnavailable):
    """A failure that may pass: no connection, a timeout, a 5xx answer (``start`` retries)."""


@dataclass(frozen=True)
class IssuerSource:
    """Where an issuer's documents are and how to fetch them."""

    discovery_url: str
    jwks_url: str | None = None
    issuer: str | None = None
    ca_file: Path | None = None
    token_file: Path | None = None
    min_refresh_seconds: float = 10.0
    max_age_seconds: float = 300.0


def _origin(url: str) -> tuple[str, str]:
    """Scheme and host:port of a URL."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def usable_keys(jwks: Any) -> dict[str, PyJWK]:
    """The asymmetric keys of a JWKS document by ``kid`` (``""`` for a key without one)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise KeysUnavailable("the JWKS document has no 'keys' list")
    public = [k for k in jwks["keys"] if isinstance(k, dict) and k.get("kty") != "oct"]
    try:
        keys = PyJWKSet.from_dict({"keys": public}).keys
    except PyJWKSetError as exc:
        raise KeysUnavailable(f"the JWKS holds no usable public key: {exc}") from exc
    return {key.key_id or "": key for key in keys}


class IssuerKeys:
    """The signing keys of one issuer, refreshed on unknown ``kid`` and with age."""

    def __init__(self, source: IssuerSource) -> None:
        self._source = source
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(source.ca_file)) if source.ca_file else True
        )
        self._http = httpx.AsyncClient(verify=verify, timeout=FETCH_TIMEOUT_SECONDS)
        self._keys: dict[str, PyJWK] = {}
        self._issuer = source.issuer
        self._jwks_url = source.jwks_url
        self._fetched = -float("inf")
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    @property
    def issuer(self) -> str:
        """The issuer every token must name (configured, else the discovery document's)."""
        if self._issuer is None:
            raise KeysUnavailable("the issuer's discovery document was not read yet")
        return self._issuer

    def _headers(self, url: str) -> dict[str, str]:
        """The fetch's headers: the current bearer token, when one is configured and the
        URL is on the discovery document's own origin (a ``jwks_uri`` elsewhere never
        receives it)."""
        path = self._source.token_file
        if path is None or _origin(url) != _origin(self._source.discovery_url):
            return {}
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KeysUnavailable(f"cannot read the token for the issuer {path}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"}

    async def _get_json(self, url: str) -> Any:
        """GET one JSON document."""
        try:
            response = await self._http.get(url, headers=self._headers(url))
        except httpx.HTTPError as exc:
            raise IssuerUnreachable(f"cannot fetch {url}: {exc!r}") from exc
        if response.status_code >= 500:
            raise IssuerUnreachable(f"{url} answered {response.status_code}")
        if response.status_code != 200:
            raise KeysUnavailable(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise KeysUnavailable(f"{url} did not answer JSON: {exc}") from exc

    async def _discover(self) -> None:
        """Read the discovery document: the issuer and the JWKS address."""
        doc = await self._get_json(self._source.discovery_url)
        issuer, jwks_uri = (
            doc.get(k) if isinstance(doc, dict) else None for k in ("issuer", "jwks_uri")
        )
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
            raise KeysUnavailable(
                f"{self._source.discovery_url} is not an OIDC discovery document "
                "(it needs 'issuer' and 'jwks_uri')"
            )
        if self._issuer is not None and issuer != self._issuer:
            raise KeysUnavailable(
                f"the discovery document names the issuer {issuer!r}, not {self._issuer!r}"
            )
        self._issuer = issuer
        self._jwks_url = self._jwks_url or jwks_uri

    async def _refresh(self) -> None:
        """Fetch the JWKS and replace the held keys."""
        assert self._jwks_url is not None
        self._fetched = monotonic()
        keys = usable_keys(await self._get_json(self._jwks_url))
        added = sorted(set(keys) - set(self._keys))
        if self._keys and added:
            log.info("the issuer's keys changed: %d key(s), new: %s", len(keys), added)
        self._keys = keys

    async def start(self) -> None:
        """Read the discovery document and the keys, retrying what may pass for a while
        (a 4xx answer or a document that is not what it should be fails at once)."""
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(START_DEADLINE_SECONDS),
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type(IssuerUnreachable),
            reraise=True,
        ):
            with attempt:
                if self._jwks_url is None or self._issuer is None:
                    await self._discover()
                await self._refresh()
        log.info(
            "token issuer ready",
            extra={"fields": {"issuer": self._issuer, "keys": sorted(self._keys)}},
        )

    async def close(self) -> None:
        """Stop a background refresh and close the HTTP client."""
        if self._background is not None:
            self._background.cancel()
        await self._http.aclose()

    async def _refresh_quietly(self) -> None:
        """Refresh under the lock; a failure keeps the held keys and is logged."""
        async with self._lock:
            try:
                await self._refresh()
            except KeysUnavailable as exc:
                log.error("cannot refresh the issuer's keys (the held keys stay): %s", exc)

    async def key(self, kid: str | None) -> PyJWK | None:
        """The key for a token's ``kid``; None when the issuer has no such key.

        A token without ``kid`` gets the issuer's only key, if it has exactly one.
        """
        age = monotonic() - self._fetched
        if age > self._source.max_age_seconds and (
            self._background is None or self._background.done()
        ):
            self._background = asyncio.create_task(self._refresh_quietly())
        found = self._lookup(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._lookup(kid)  # another request may have refreshed meanwhile
            if found is None and monotonic() - self._fetched >= self._source.min_refresh_seconds:
                try:
                    await self._refresh()
                except KeysUnavailable as exc:
                    log.error("cannot refresh the issuer's keys (the held keys stay): %s", exc)
                found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> PyJWK | None:
        """The held key for ``kid`` (or the only key, for a token without one)."""
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)
