"""The control plane's PKI, generated with ``cryptography``: pure functions, PEM out.

One CA signs everything: the API server's serving cert (loopback + in-cluster names),
the serving certs of the controller-manager and scheduler, and client certs whose
subject is the identity RBAC sees (``system:kube-controller-manager``,
``system:kube-scheduler``, and an admin in group ``system:masters``). A separate key
pair signs and verifies ServiceAccount tokens. ECDSA P-256 keeps generation instant.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
API_SERVER_IPS = ("127.0.0.1", "10.0.0.1")


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert: bytes
    key: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    """Return a fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Return a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    """Return a subject with a CN and any number of O entries (Kubernetes groups)."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    """Return a certificate builder with serial, validity and key set."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def certificate_authority(common_name: str = "kubeserve-devcluster-ca") -> KeyPair:
    """Return a self-signed CA."""
    key = _new_key()
    subject = _name(common_name)
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """Return a leaf certificate signed by ``ca`` for serving and/or client auth."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be an ECDSA key made by certificate_authority()")
    key = _new_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    if not usages:
        raise ValueError("a certificate needs server=True, client=True or both")
    builder = (
        _builder(_name(common_name, organizations), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def service_account_keys() -> KeyPair:
    """Return the token-signing key pair; ``cert`` holds the PEM public key."""
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(public, _key_pem(key))


@dataclass(frozen=True)
class Pki:
    """Everything the control plane needs, keyed by the file stem it is written to."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kwok: KeyPair
    service_account: KeyPair


def generate(extra_ips: tuple[str, ...] = ()) -> Pki:
    """Return a fresh PKI for one cluster; ``extra_ips`` join the API server's SANs."""
    ca = certificate_authority()
    names, ips = ("localhost",), ("127.0.0.1",)
    return Pki(
        ca=ca,
        apiserver=issue(
            ca,
            "kube-apiserver",
            dns_names=API_SERVER_NAMES,
            ip_addresses=API_SERVER_IPS + extra_ips,
            server=True,
        ),
        admin=issue(ca, "kubeserve-admin", organizations=("system:masters",), client=True),
        controller_manager=issue(
            ca,
            "system:kube-controller-manager",
            dns_names=names,
            ip_addresses=ips,
            server=True,
            client=True,
        ),
        scheduler=issue(
            ca, "system:kube-scheduler", dns_names=names, ip_addresses=ips, server=True, client=True
        ),
        kwok=issue(ca, "kwok-controller", organizations=("system:masters",), client=True),
        service_account=service_account_keys(),
    )
