"""A tiny, real OIDC issuer for tests: discovery document and JWKS over HTTP on loopback.

Limits first: test support only (like ``testing``), never used by the server; plain
HTTP on 127.0.0.1, RSA keys only. Run as ``python -m kubeserve_runtime.testissuer PORT
DIR``: it serves ``/.well-known/openid-configuration``
(issuer ``http://127.0.0.1:PORT``) and ``/jwks``, the JWKS read from ``DIR/jwks.json`` on
every request, so a test rotates keys by rewriting that file. ``/stats`` counts the JWKS
fetches. It signs nothing: the test holds the private keys and signs tokens itself.

``TestIssuer`` starts and stops the process and makes keys and tokens with
``cryptography`` and PyJWT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from kubeserve_runtime.testing import free_port, wait_until


def app(folder: Path, issuer: str) -> Any:
    """The issuer's Starlette application."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    fetches = {"jwks": 0}

    async def discovery(_: Request) -> JSONResponse:
        return JSONResponse({"issuer": issuer, "jwks_uri": f"{issuer}/jwks"})

    async def jwks(_: Request) -> JSONResponse:
        fetches["jwks"] += 1
        return JSONResponse(json.loads((folder / "jwks.json").read_text()))

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(fetches)

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/stats", stats),
        ]
    )


class SigningKey:
    """An RSA key pair with a key id: its public JWK, and tokens it signs."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK."""
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        """A token with these claims, signed RS256, ``kid`` in the header (default: own)."""
        return jwt.encode(claims, self.private, "RS256", headers={"kid": kid or self.kid})


class TestIssuer:
    """The issuer process with a JWKS the test controls."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def publish(self, *keys: SigningKey) -> None:
        """Serve exactly these keys from now on."""
        path = self.folder / "jwks.json"
        path.with_suffix(".tmp").write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
        path.with_suffix(".tmp").replace(path)

    def fetches(self) -> int:
        """How many times the JWKS was fetched."""
        return int(httpx.get(f"{self.url}/stats").json()["jwks"])

    def claims(self, subject: str, **extra: Any) -> dict[str, Any]:
        """Claims of a token valid for an hour from this issuer."""
        now = int(time.time())
        return {"iss": self.url, "sub": subject, "iat": now, "exp": now + 3600, **extra}

    def __enter__(self) -> Self:
        with (self.folder / "issuer.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.port), str(self.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._up, "the test OIDC issuer answers")
        return self

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/stats").status_code == 200
        except httpx.TransportError:
            return False

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


if __name__ == "__main__":
    import uvicorn

    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(app(folder, f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port)
