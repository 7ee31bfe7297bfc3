"""s3:// downloads against a real S3-compatible server (moto's server on loopback),
through the library API and the ``kubeserve-runtime download`` command."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kubeserve_runtime.storage import DownloadOptions, StorageError, download

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "kubeserve-test",
    "AWS_SECRET_ACCESS_KEY": "kubeserve-secret",
    "AWS_REGION": "us-east-1",
}
BUCKET = "models"


def _free_port() -> int:
    """A currently free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """Start moto's S3 server on loopback and fill a bucket with a few models."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = _client(url)
    client.create_bucket(Bucket=BUCKET)
    weights = b"sklearn-weights" * 50
    client.put_object(Bucket=BUCKET, Key="iris/v1/model.joblib", Body=weights)
    client.put_object(Bucket=BUCKET, Key="iris/v1/meta/schema.json", Body=b"{}")
    client.put_object(Bucket=BUCKET, Key="iris/v1/", Body=b"")  # console-style folder marker
    client.put_object(Bucket=BUCKET, Key="iris/v10/other.bin", Body=b"not v1")
    client.put_object(
        Bucket=BUCKET,
        Key="iris/v1/SHA256SUMS",
        Body=f"{hashlib.sha256(weights).hexdigest()}  model.joblib\n".encode(),
    )
    client.put_object(Bucket=BUCKET, Key="bad/model.onnx", Body=b"tampered")
    client.put_object(
        Bucket=BUCKET, Key="bad/SHA256SUMS", Body=f"{'2' * 64}  model.onnx\n".encode()
    )
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"onnx"))
    client.put_object(Bucket=BUCKET, Key="packed/model.tar.gz", Body=archive.getvalue())
    yield url
    server.stop()


def _client(url: str) -> Any:
    """A boto3 client for the test server."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=CREDENTIALS["AWS_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _options(url: str) -> DownloadOptions:
    """Options pointing at the test server through AWS_ENDPOINT_URL."""
    return DownloadOptions(config={**CREDENTIALS, "AWS_ENDPOINT_URL": url})


def test_prefix_downloads_every_object_below_it(endpoint: str, tmp_path: Path) -> None:
    """s3://bucket/prefix fetches prefix/ recursively (not prefix10/) and verifies SHA256SUMS."""
    dest = tmp_path / "models"
    download(f"s3://{BUCKET}/iris/v1", dest, _options(endpoint))
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["SHA256SUMS", "meta/schema.json", "model.joblib"]
    assert (dest / "model.joblib").read_bytes() == b"sklearn-weights" * 50


def test_single_object_with_fragment(endpoint: str, tmp_path: Path) -> None:
    """A key naming one object downloads just that object."""
    digest = hashlib.sha256(b"{}").hexdigest()
    dest = tmp_path / "models"
    download(f"s3://{BUCKET}/iris/v1/meta/schema.json#sha256={digest}", dest, _options(endpoint))
    assert [p.name for p in dest.iterdir()] == ["schema.json"]


def test_single_archive_is_unpacked(endpoint: str, tmp_path: Path) -> None:
    """An archive object is unpacked like an https one."""
    dest = tmp_path / "models"
    download(f"s3://{BUCKET}/packed/model.tar.gz", dest, _options(endpoint))
    assert [p.name for p in dest.iterdir()] == ["model.onnx"]


def test_manifest_mismatch_leaves_no_partial_model(endpoint: str, tmp_path: Path) -> None:
    """A tampered object fails verification and nothing is left."""
    dest = tmp_path / "models"
    with pytest.raises(StorageError, match=r"checksum mismatch for model\.onnx"):
        download(f"s3://{BUCKET}/bad", dest, _options(endpoint))
    assert not dest.exists()


@pytest.mark.parametrize(
    ("uri", "cause"),
    [
        ("s3://no-such-bucket/iris", "bucket 'no-such-bucket' does not exist"),
        (
            f"s3://{BUCKET}/iris/v9",
            f"no object 'iris/v9' and no objects under 'iris/v9/' in bucket '{BUCKET}'",
        ),
    ],
)
def test_missing_bucket_or_key(endpoint: str, tmp_path: Path, uri: str, cause: str) -> None:
    """Missing buckets and keys are named in the error."""
    with pytest.raises(StorageError) as info:
        download(uri, tmp_path / "models", _options(endpoint))
    assert str(info.value) == f"{uri}: {cause}"
    assert not (tmp_path / "models").exists()


def test_objects_over_the_limit_are_refused_before_fetching(endpoint: str, tmp_path: Path) -> None:
    """Each object's listed size is charged before it is fetched: a prefix stops at the
    object that does not fit, a single object at its HEAD size; nothing is left."""
    limited = DownloadOptions(config={**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}, max_bytes=800)
    dest = tmp_path / "models"
    with pytest.raises(StorageError) as info:
        download(f"s3://{BUCKET}/iris/v1", dest, limited)
    assert str(info.value).startswith(
        f"s3://{BUCKET}/iris/v1: iris/v1/model.joblib (750 bytes) would take the model past "
        "its size limit of 800 bytes (KUBESERVE_MAX_MODEL_BYTES; "
    )
    assert not dest.exists()
    tiny = DownloadOptions(config=limited.config, max_bytes=10)
    with pytest.raises(StorageError, match=r"packed/model\.tar\.gz \(\d+ bytes\) would take"):
        download(f"s3://{BUCKET}/packed/model.tar.gz", dest, tiny)
    assert not dest.exists()


def test_cli_reads_kserve_style_env_and_secret_dir(endpoint: str, tmp_path: Path) -> None:
    """The init container command: S3_ENDPOINT + S3_USE_HTTPS=0, credentials from a Secret."""
    secret = tmp_path / "secret"
    secret.mkdir()
    for key, value in CREDENTIALS.items():
        (secret / key).write_text(value + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "KUBESERVE_"))}
    env |= {
        "S3_ENDPOINT": endpoint.removeprefix("http://"),
        "S3_USE_HTTPS": "0",
        "KUBESERVE_STORAGE_SECRET_DIR": str(secret),
    }
    dest = tmp_path / "mnt" / "models"
    ok = _cli(["download", f"s3://{BUCKET}/iris/v1", str(dest)], env)
    assert ok.returncode == 0, ok.stderr
    assert (dest / "model.joblib").is_file()
    missing = _cli(["download", f"s3://{BUCKET}/nothing/here", str(tmp_path / "x")], env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"kubeserve-runtime download: error: s3://{BUCKET}/nothing/here: no object "
        f"'nothing/here' and no objects under 'nothing/here/' in bucket '{BUCKET}'"
    ]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run kubeserve-runtime as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "kubeserve_runtime.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
