"""Serving TLS from files that rotate: one reloader for the REST and gRPC ports.

Limits first: the files are polled (every ``tls_reload_seconds``), so a rotated
certificate is served from the next handshake after the poll that sees it, up to that
long after the files changed; connections already open keep the certificate they
shook hands with. A change is taken only when the certificate, the key and the client
CA read the same before and after the new context is built (which checks that the key
matches the certificate), so a rotation caught halfway (cert written, key not yet) is retried at the
next poll while the previous certificate keeps being served. A broken or missing file
after start is logged and the last good material stays in use; at start it is an error.
The metrics port stays plain HTTP (scrapers are kept to the monitoring namespace by the
NetworkPolicy the operator renders).

Protocol floor: TLS 1.2, with only ECDHE key exchange and AEAD ciphers for TLS 1.2
(TLS 1.3 suites are all AEAD); compression and renegotiation off. gRPC uses grpc's
own TLS stack, whose floor is TLS 1.2 with the same kind of suites by default.

Client certificates (mTLS): with a client CA, gRPC refuses the handshake of a client
without a certificate signed by it. REST asks for one and refuses a presented
certificate that does not verify during the handshake; a client that presents none is
answered 403 on everything except the liveness and readiness paths (kubelet probes
cannot present a certificate; the health endpoints also skip token auth). Any
certificate the CA signed is accepted: the CA is the access list.

REST swaps contexts per handshake through the SNI callback (called with or without
SNI), so the listening socket never changes; gRPC asks for the current material on
each handshake through grpc's certificate fetcher.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
"""The TLS 1.2 suites offered: forward secrecy and authenticated encryption only."""


class TlsError(ValueError):
    """The TLS files cannot be used (missing, unreadable, or key and cert disagree)."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the serving certificate, its key and the optional client CA live."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate signed by the client CA."""
        return self.client_ca_file is not None


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The bytes of the files at one moment."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


def read_material(files: TlsFiles) -> TlsMaterial:
    """Read the files; raise ``TlsError`` naming the one that cannot be read."""

    def read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TlsError(f"cannot read {path}: {exc.strerror or exc}") from exc

    ca = read(files.client_ca_file) if files.client_ca_file is not None else None
    return TlsMaterial(read(files.cert_file), read(files.key_file), ca)


def server_context(files: TlsFiles, client_ca: bytes | None) -> ssl.SSLContext:
    """Return a server context for the files: TLS 1.2+, strong suites, optional mTLS.

    With a client CA the context asks for a client certificate and verifies a presented
    one (``CERT_OPTIONAL``: the REST protocol refuses requests that came without one).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(files.cert_file, files.key_file)
        if client_ca is not None:
            context.load_verify_locations(cadata=client_ca.decode("ascii"))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (ssl.SSLError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise TlsError(f"cannot load the TLS files: {exc}") from exc
    return context


class TlsReloader:
    """The current TLS material and contexts, reloaded when the files change."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.material, self._context = self._load()
        self._refused: TlsMaterial | None = None
        """The last content that could not be used (logged once, not at every poll)."""
        self.version = 1
        """Increases each time new material is taken."""
        self._listening = server_context(files, self.material.client_ca)
        self._listening.sni_callback = self._pick_context

    def _load(self) -> tuple[TlsMaterial, ssl.SSLContext]:
        """Read and validate the files; raise ``TlsError`` if they are not usable now."""
        before = read_material(self.files)
        context = server_context(self.files, before.client_ca)
        if read_material(self.files) != before:
            raise TlsError("the files changed while they were being loaded")
        return before, context

    def _pick_context(self, sslobj: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        """SNI callback: hand the handshake the newest context."""
        sslobj.context = self._context

    @property
    def rest_context(self) -> ssl.SSLContext:
        """The context the REST listener is created with (it defers to the newest)."""
        return self._listening

    def poll(self) -> bool:
        """Take the files' content if it changed and is usable; True when it was taken.

        Unusable content is logged once (an unreadable file at every poll) and the
        previous material stays in use."""
        try:
            current = read_material(self.files)
            if current in (self.material, self._refused):
                return False
            self._refused = current
            material, context = self._load()
        except TlsError as exc:
            log.error(
                f"keeping the previous TLS certificate: {exc}",
                extra={"fields": {"error": str(exc)}},
            )
            return False
        self.material, self._context, self._refused = material, context, None
        self.version += 1
        log.info("TLS certificate reloaded", extra={"fields": {"version": self.version}})
        return True

    async def watch(self, interval: float) -> None:
        """Poll the files every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.poll)
            except Exception:  # a bug must not stop the watch: the old material stays
                log.exception("TLS reload failed")

    def grpc_credentials(self) -> Any:
        """Return grpc server credentials that follow the reloaded material."""
        import grpc

        def configuration(material: TlsMaterial) -> Any:
            return grpc.ssl_server_certificate_configuration(
                [(material.key, material.cert)], root_certificates=material.client_ca
            )

        served = [self.version]

        def fetch() -> Any:
            """Called by grpc before each handshake: new material, or None for no change."""
            if served[0] == self.version:
                return None
            served[0] = self.version
            return configuration(self.material)

        return grpc.dynamic_ssl_server_credentials(
            configuration(self.material), fetch, require_client_authentication=self.files.mutual
        )
