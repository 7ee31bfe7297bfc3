"""Pure pieces of the storage initializer: URI parsing, redaction, manifests, path
safety, configuration resolution and the model size limit. Archive checks have their own
file (test_storage_archive.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeserve_runtime.storage.archive import is_archive
from kubeserve_runtime.storage.checksum import ChecksumError, parse_manifest, verify_manifest
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.gcs import endpoint
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.paths import safe_join
from kubeserve_runtime.storage.quota import (
    DEFAULT_MAX_MODEL_BYTES,
    Quota,
    QuotaExceeded,
    max_model_bytes,
)
from kubeserve_runtime.storage.redaction import RedactingFilter, redact_text, redact_uri
from kubeserve_runtime.storage.s3 import s3_config
from kubeserve_runtime.storage.uri import parse_uri
from kubeserve_runtime.storage.web import file_name

DIGEST = "a" * 64


def test_parse_uri_splits_scheme_bucket_key_and_fragment() -> None:
    """A bucket URI keeps its key and its digest; the fragment is not sent."""
    source = parse_uri(f"s3://models/iris/v2/model.onnx#sha256={DIGEST.upper()}")
    assert (source.scheme, source.netloc, source.key) == ("s3", "models", "iris/v2/model.onnx")
    assert source.sha256 == DIGEST
    assert source.without_fragment == "s3://models/iris/v2/model.onnx"


@pytest.mark.parametrize(
    ("uri", "cause"),
    [
        ("ftp://host/model", "unknown URI scheme 'ftp'"),
        ("/just/a/path", "unknown URI scheme '(none)'"),
        ("s3:///key", "missing bucket name"),
        ("pvc:///path", "missing PVC name"),
        ("file://host/path", "must be absolute"),
        ("https://h/m.onnx#md5=abc", "unsupported URI fragment"),
        ("https://h/m.onnx#sha256=xyz", "64 hexadecimal characters"),
    ],
)
def test_parse_uri_rejects_unusable_uris(uri: str, cause: str) -> None:
    """Every unusable URI is refused with a cause naming the problem and the URI."""
    with pytest.raises(StorageError) as info:
        parse_uri(uri)
    assert cause in str(info.value)
    assert str(info.value).startswith(uri.split("#", 1)[0])


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("s3://models/iris/v2", "s3://models/iris/v2"),
        (f"HTTPS://h/m.onnx#sha256={DIGEST}", f"HTTPS://h/m.onnx#sha256={DIGEST}"),
        ("https://u:p@h:8443/m?x=1#t=2", "https://REDACTED@h:8443/m?REDACTED#REDACTED"),
        ("https://token@h/m", "https://REDACTED@h/m"),
        ("https://h/m?sig=abc&se=2030", "https://h/m?REDACTED"),
        ("https://h/m.onnx#md5=abc", "https://h/m.onnx#REDACTED"),
        ("https://[::1/m?token=abc", "https://REDACTED"),
        ("no uri at all", "no uri at all"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    """Userinfo, the whole query and non-digest fragments go; the rest stays as written."""
    assert redact_uri(uri) == shown


@given(st.text(alphabet="ab:/@?#=%[]. s", max_size=40))
def test_redacting_twice_changes_nothing(tail: str) -> None:
    """Redaction is idempotent: a redacted line redacted again stays the same.

    Hypothesis found 'https:////@?:' once: rebuilding it with urlunsplit lost the "//"
    before an empty host, and the second pass read "@" as userinfo.
    """
    once = redact_text(f"see https://{tail} and s3://{tail}")
    assert redact_text(once) == once


def test_redact_text_and_logging_filter() -> None:
    """URIs inside text (quoted or not) are redacted; a filter rewrites records in place,
    arguments and exception text included."""
    text = "Redirect location 'http://h/x?X-Goog-Signature=ab' from https://u:p@h/y failed"
    assert redact_text(text) == (
        "Redirect location 'http://h/x?REDACTED' from https://REDACTED@h/y failed"
    )
    try:
        raise ValueError("bad https://h/z?sig=secret-two")
    except ValueError as exc:
        record = logging.LogRecord(
            "httpx",
            logging.INFO,
            __file__,
            1,
            "GET %s",
            ("https://h/a?sig=secret-one",),
            (type(exc), exc, exc.__traceback__),
        )
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "GET https://h/a?REDACTED" in formatted
    assert "bad https://h/z?REDACTED" in formatted
    assert "secret-one" not in formatted
    assert "secret-two" not in formatted


def test_manifest_parsing_accepts_sha256sum_output() -> None:
    """Both text and binary markers of sha256sum, comments and blank lines are accepted."""
    text = f"# comment\n\n{DIGEST}  model.onnx\n{'b' * 64} *sub/dir/w.bin\n"
    assert parse_manifest(text) == [(DIGEST, "model.onnx"), ("b" * 64, "sub/dir/w.bin")]
    with pytest.raises(ChecksumError, match="line 1"):
        parse_manifest("not a checksum line\n")


def test_manifest_cannot_point_outside_the_model(tmp_path: Path) -> None:
    """A SHA256SUMS entry with .. is refused, not followed."""
    (tmp_path / "SHA256SUMS").write_text(f"{DIGEST}  ../etc/passwd\n")
    with pytest.raises(ChecksumError, match="outside the model"):
        verify_manifest(tmp_path)


@pytest.mark.parametrize(
    ("relative", "safe"),
    [("a/b.txt", True), ("../x", False), ("/etc/passwd", False), ("a/../../x", False), ("", False)],
)
def test_safe_join(tmp_path: Path, relative: str, safe: bool) -> None:
    """Only relative paths that stay below the root are joined."""
    assert (safe_join(tmp_path, relative) is not None) is safe


def test_s3_config_from_kserve_style_variables() -> None:
    """S3_ENDPOINT as a bare host with S3_USE_HTTPS=0 becomes an http URL, path style."""
    options = DownloadOptions(
        config={"S3_ENDPOINT": "minio.ml:9000", "S3_USE_HTTPS": "0", "AWS_REGION": "eu-west-1"}
    )
    config = s3_config(options)
    assert config.endpoint_url == "http://minio.ml:9000"
    assert config.addressing_style == "path"
    assert config.region == "eu-west-1"
    assert config.verify is True
    assert s3_config(DownloadOptions()).addressing_style == "auto"


def test_secret_dir_fills_values_the_environment_does_not_set(tmp_path: Path) -> None:
    """Secret files supply credentials; an explicit environment variable wins."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "AWS_ACCESS_KEY_ID").write_text("from-secret\n")
    (secret / "AWS_SECRET_ACCESS_KEY").write_text("secret-key\n")
    (secret / "..data").mkdir()
    options = DownloadOptions.from_environment(
        environ={"KUBESERVE_STORAGE_SECRET_DIR": str(secret), "AWS_SECRET_ACCESS_KEY": "env-key"}
    )
    config = s3_config(options)
    assert (config.access_key, config.secret_key) == ("from-secret", "env-key")


def test_pvc_root_and_gcs_emulator_come_from_the_environment() -> None:
    """KUBESERVE_PVC_ROOT moves the PVC mount root; STORAGE_EMULATOR_HOST the GCS API."""
    options = DownloadOptions.from_environment(
        environ={"KUBESERVE_PVC_ROOT": "/data/pvc", "STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}
    )
    assert options.pvc_root == Path("/data/pvc")
    assert endpoint(options) == "http://127.0.0.1:4443"
    assert endpoint(DownloadOptions()).startswith("https://")


def test_file_names_of_urls() -> None:
    """The last path segment names the file; a bare host falls back to 'model'."""
    assert file_name(parse_uri("https://h/a/model%20v2.onnx?x=1")) == "model v2.onnx"
    assert file_name(parse_uri("https://h/")) == "model"


def test_archive_names() -> None:
    """Archives are recognised by suffix."""
    assert all(is_archive(n) for n in ("m.zip", "m.tar", "m.tar.gz", "m.TGZ"))
    assert not any(is_archive(n) for n in ("model.onnx", "model.joblib", "gz"))


def test_model_size_limit_comes_from_the_environment() -> None:
    """KUBESERVE_MAX_MODEL_BYTES (integer bytes) sets the limit; unset means 10 GiB."""
    assert DownloadOptions.from_environment(environ={}).max_bytes == 10 * 1024**3
    assert DEFAULT_MAX_MODEL_BYTES == 10 * 1024**3
    environ = {"KUBESERVE_MAX_MODEL_BYTES": " 2048 "}
    assert DownloadOptions.from_environment(environ=environ).max_bytes == 2048
    for bad in ("0", "-5", "1Gi", "1.5", "lots"):
        with pytest.raises(ValueError, match="KUBESERVE_MAX_MODEL_BYTES must be a positive"):
            max_model_bytes({"KUBESERVE_MAX_MODEL_BYTES": bad})


def test_quota_refuses_the_byte_past_the_limit() -> None:
    """Charges add up to the limit exactly; one byte more names what needed it."""
    quota = Quota(10)
    quota.charge(6, "a")
    quota.require(4, "b")
    quota.charge(4, "b")
    with pytest.raises(QuotaExceeded) as info:
        quota.charge(1, "model.bin")
    assert str(info.value) == (
        "model.bin would take the model past its size limit of 10 bytes "
        "(KUBESERVE_MAX_MODEL_BYTES; 10 bytes already on the volume)"
    )
    assert quota.used == 10
