"""``gs://BUCKET/KEY`` sources through the Cloud Storage JSON API, with httpx.

No Google SDK is needed: public buckets are read anonymously, and a bearer token from
``GOOGLE_OAUTH_ACCESS_TOKEN`` (environment or Secret directory) is sent when set.
``STORAGE_EMULATOR_HOST`` points the client at an emulator, as the Google libraries do.
The token is only ever sent over https (see ``web.client``): an emulator on plain http
is read anonymously, with the token unset.
Private buckets with service-account keys can also be read through Cloud Storage's
S3-compatible endpoint with HMAC keys and an ``s3://`` URI.

KEY naming one object downloads that object; otherwise every object under ``KEY/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from kubeserve_runtime.storage import web
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.prefix import place_objects, prefix_of
from kubeserve_runtime.storage.quota import Quota
from kubeserve_runtime.storage.uri import SourceURI
from kubeserve_runtime.storage.web import http_cause

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
TOKEN_VARIABLE = "GOOGLE_OAUTH_ACCESS_TOKEN"


def endpoint(options: DownloadOptions) -> str:
    """The JSON API base URL (an emulator when STORAGE_EMULATOR_HOST is set)."""
    emulator = options.get("STORAGE_EMULATOR_HOST")
    if not emulator:
        return DEFAULT_ENDPOINT
    return emulator.rstrip("/") if "://" in emulator else f"http://{emulator.rstrip('/')}"


def fetch(source: SourceURI, staging: Path, options: DownloadOptions, quota: Quota) -> Path | None:
    """Download the object or every object under the prefix into staging."""
    bucket, key = source.netloc, source.key
    base = f"{endpoint(options)}/storage/v1/b/{quote(bucket, safe='')}/o"
    with (
        web.failures(source),
        web.client(TOKEN_VARIABLE, web.bearer(options.get(TOKEN_VARIABLE))) as client,
    ):

        def fetch_one(name: str, target: Path) -> None:
            url = f"{base}/{quote(name, safe='')}"
            with client.stream("GET", url, params={"alt": "media"}) as response:
                web.save(response, target, source, quota)

        if key and not key.endswith("/"):
            meta = client.get(f"{base}/{quote(key, safe='')}")
            if meta.status_code == 200:
                target = staging / Path(key).name
                fetch_one(key, target)
                return target
            if meta.status_code != 404:
                raise StorageError(source.raw, http_cause(meta.status_code))
        names = _list(client, base, prefix_of(key), source, bucket)
        place_objects(source, staging, names, fetch_one)
        return None


def _list(
    client: httpx.Client, base: str, prefix: str, source: SourceURI, bucket: str
) -> Iterator[str]:
    """Yield object names under prefix, following pageToken."""
    params: dict[str, str] = {"prefix": prefix, "fields": "items(name),nextPageToken"}
    while True:
        response = client.get(base, params=params)
        if response.status_code == 404:
            raise StorageError(source.raw, f"bucket {bucket!r} does not exist")
        if response.status_code != 200:
            raise StorageError(source.raw, http_cause(response.status_code))
        body: dict[str, Any] = response.json()
        for item in body.get("items", []):
            yield str(item["name"])
        token = body.get("nextPageToken")
        if not token:
            return
        params["pageToken"] = str(token)
