"""HTTPS for the simulator: a local certificate authority and a server certificate for loopback, kept in
the data dir, and a trust file (the usual roots plus that authority) to hand to clients as SSL_CERT_FILE."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
VALID_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Certificate:
    """The files a TLS simulator uses (`cert_file`, `key_file`) and the one its clients trust (`trust_file`)."""

    cert_file: Path
    key_file: Path
    authority_file: Path
    trust_file: Path


def names_for(host: str) -> list[str]:
    """The names the certificate must cover: loopback, and the host it is served on when that is one."""
    return [*LOOPBACK, *([host] if host not in (*WILDCARD_HOSTS, *LOOPBACK) else [])]


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _usage(**allowed: bool) -> x509.KeyUsage:
    uses = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{use: allowed.get(use, False) for use in uses})


def _issue(names: Iterable[str]) -> tuple[bytes, bytes, bytes]:
    """A fresh authority and a server certificate it signs: (authority PEM, server chain PEM, key PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=VALID_DAYS)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media-gateway simulator CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    authority = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media-gateway simulator")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True, key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    authority_pem = authority.public_bytes(serialization.Encoding.PEM)
    return (
        authority_pem,
        server.public_bytes(serialization.Encoding.PEM) + authority_pem,
        _pem_key(server_key),
    )


def _still_good(cert_file: Path, names: Iterable[str]) -> bool:
    """The stored certificate covers every name and is not about to expire (so clients keep trusting it)."""
    try:
        server = x509.load_pem_x509_certificate(cert_file.read_bytes())
        covered = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    wanted = {_general_name(n) for n in names}
    fresh = server.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE
    return fresh and wanted <= set(covered)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def usual_roots() -> Path:
    """What clients trust today: their own SSL_CERT_FILE when set, else certifi's roots (as httpx does)."""
    configured = os.environ.get("SSL_CERT_FILE")
    return Path(configured) if configured else Path(certifi.where())


def ensure_certificate(directory: Path, host: str = "127.0.0.1") -> Certificate:
    """The simulator's certificate in `directory`, made on first use and kept while it covers `host`, so an
    exported SSL_CERT_FILE stays good across restarts; the trust file is rewritten from the usual roots."""
    directory.mkdir(parents=True, exist_ok=True)
    files = Certificate(
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        authority_file=directory / "authority.pem",
        trust_file=directory / "trust.pem",
    )
    names = names_for(host)
    if not (
        _still_good(files.cert_file, names) and files.key_file.exists() and files.authority_file.exists()
    ):
        authority, chain, key = _issue(names)
        _write(files.key_file, key, 0o600)
        _write(files.cert_file, chain)
        _write(files.authority_file, authority)
    roots = usual_roots()
    if roots.resolve() == files.trust_file.resolve():  # exported from an earlier run: start from the roots
        roots = Path(certifi.where())
    bundle = roots.read_bytes().rstrip(b"\n") + b"\n" + files.authority_file.read_bytes()
    _write(files.trust_file, bundle)
    return files
