"""``s3://BUCKET/KEY`` sources through boto3, for AWS S3 and S3-compatible stores.

Configuration (environment first, then the Secret directory): the standard
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, plus
the KServe-style ``S3_ENDPOINT`` (host or URL), ``S3_USE_HTTPS`` (0 for plain HTTP when
S3_ENDPOINT is a bare host), ``S3_VERIFY_SSL`` (0 to skip verification),
``S3_ADDRESSING_STYLE`` (path/virtual/auto; default path for custom endpoints, as MinIO
and most on-premises stores need) and ``AWS_NO_SIGN_REQUEST`` for public buckets.

KEY naming one object downloads that object; otherwise KEY is a prefix and every object
under ``KEY/`` is downloaded with its path relative to the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.prefix import place_objects, prefix_of
from kubeserve_runtime.storage.quota import Quota
from kubeserve_runtime.storage.uri import SourceURI


@dataclass(frozen=True)
class S3Config:
    """Resolved client settings."""

    endpoint_url: str | None
    region: str | None
    access_key: str | None
    secret_key: str | None
    session_token: str | None
    verify: bool
    addressing_style: str
    unsigned: bool


def s3_config(options: DownloadOptions) -> S3Config:
    """Resolve S3 client settings from the environment and Secret files."""
    endpoint = options.get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT")
    if endpoint and "://" not in endpoint:
        use_https = options.get("S3_USE_HTTPS") not in ("0", "false", "False")
        endpoint = f"{'https' if use_https else 'http'}://{endpoint}"
    style = options.get("S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto")
    return S3Config(
        endpoint_url=endpoint,
        region=options.get("AWS_REGION", "AWS_DEFAULT_REGION"),
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        session_token=options.get("AWS_SESSION_TOKEN"),
        verify=options.get("S3_VERIFY_SSL") not in ("0", "false", "False"),
        addressing_style=style,
        unsigned=options.flag("AWS_NO_SIGN_REQUEST"),
    )


def s3_client(config: S3Config) -> Any:
    """Create a boto3 S3 client for the configuration."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    botocore_config = Config(
        s3={"addressing_style": config.addressing_style},
        retries={"mode": "standard", "max_attempts": 5},
        signature_version=UNSIGNED if config.unsigned else None,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=config.secret_key,
        aws_session_token=config.session_token,
        verify=config.verify,
        config=botocore_config,
    )


def fetch(source: SourceURI, staging: Path, options: DownloadOptions, quota: Quota) -> Path | None:
    """Download the object or every object under the prefix into staging.

    Each object's size (from HEAD or the listing) is charged to the quota before it is
    fetched: the body is exactly that long, also when boto3 fetches it in ranges.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    config = s3_config(options)
    bucket, key = source.netloc, source.key
    try:
        client = s3_client(config)

        def fetch_one(object_key: str, target: Path, size: int) -> None:
            quota.charge(size, f"{object_key} ({size} bytes)")
            client.download_file(bucket, object_key, str(target))

        size = _object_size(client, bucket, key) if key and not key.endswith("/") else None
        if size is not None:
            target = staging / Path(key).name
            fetch_one(key, target, size)
            return target
        sizes = _list_sizes(client, bucket, prefix_of(key))
        place_objects(source, staging, sizes, lambda name, path: fetch_one(name, path, sizes[name]))
        return None
    except ClientError as exc:
        raise StorageError(source.raw, _client_error_cause(exc, bucket, key)) from exc
    except BotoCoreError as exc:
        raise StorageError(source.raw, f"S3 request failed: {exc}") from exc


def _object_size(client: Any, bucket: str, key: str) -> int | None:
    """The size of object key, or None when there is none (HEAD 404; other errors propagate)."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _status(exc) == 404:
            return None
        raise
    return int(head["ContentLength"])


def _list_sizes(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Every key under prefix with its size (paginated), in listing order."""
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        sizes.update((str(item["Key"]), int(item["Size"])) for item in page.get("Contents", []))
    return sizes


def _status(exc: Any) -> int:
    """The HTTP status of a botocore ClientError."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _client_error_cause(exc: Any, bucket: str, key: str) -> str:
    """Turn a botocore ClientError into a one-line cause."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = _status(exc)
    if code == "NoSuchBucket":
        return f"bucket {bucket!r} does not exist"
    if code in ("NoSuchKey", "404") or status == 404:
        return f"object {key!r} not found in bucket {bucket!r}"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return f"credentials rejected ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if code in ("AccessDenied", "403") or status == 403:
        return f"access denied (HTTP 403) to bucket {bucket!r}; check credentials and policy"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"S3 error {code or status}: {message}".rstrip(": ")
