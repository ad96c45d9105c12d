"""Certificates for serving HTTPS: a local certificate authority created on first use (the
way `mkcert` works), or a certificate and key the operator supplies.

The local CA lives in one directory (`<data_dir>/tls`):

- `ca.pem`, `ca-key.pem` — the CA (ECDSA P-256, ten years); clients trust `ca.pem`;
- `server.pem`, `server-key.pem` — the server certificate followed by the CA certificate (the
  chain served), and its key. Reissued when missing, within 30 days of expiry, or when it
  does not name every requested host.

Keys are written mode 0600. Every file is written to a temporary name and renamed into place,
under an exclusive lock on `.lock`, so processes starting at once agree on one CA.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transship.identity.secrets import write_private_file

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
LOCK_FILE = ".lock"

CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=397)  # the most browsers and Apple clients accept
RENEW_BEFORE = datetime.timedelta(days=30)
CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdating, for clients whose clock is behind

# Always in the server certificate: loopback under every name a client may use for it, and
# `<registry>.localhost`, the login servers of the default suffix `localhost:<port>`.
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "*.localhost", "127.0.0.1", "::1")

_DNS_NAME = re.compile(
    r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
)

_IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Private keys a TLS server certificate can be made with (not X25519/X448: no signatures).
_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


class TlsError(ValueError):
    """A certificate or key is missing, unreadable, or does not fit."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What the server loads: a PEM certificate chain (leaf first) and its private key.

    `ca_certificate` is the local CA clients should trust; None when the operator supplied
    the certificate (it chains to whatever CA they used).
    """

    certificate: Path
    key: Path
    ca_certificate: Path | None


def ensure_local_ca(directory: Path, hosts: Sequence[str]) -> TlsFiles:
    """The local CA in `directory` and a server certificate it signed for `hosts` (plus
    `DEFAULT_HOSTS`), creating or reissuing what is needed. `hosts` are DNS names (a leading
    `*.` for a wildcard) or IP addresses; unspecified addresses (`0.0.0.0`, `::`) are skipped.

    Raises TlsError when a host is not a valid name, or when `ca.pem` exists but its key is
    missing or does not match (replacing the CA would silently break every client that
    trusts it).
    """
    wanted = _names(hosts)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(
        certificate=directory / SERVER_FILE,
        key=directory / SERVER_KEY_FILE,
        ca_certificate=directory / CA_FILE,
    )
    with _locked(directory / LOCK_FILE):
        ca_cert, ca_key = _load_or_create_ca(directory)
        now = _now()
        if not _server_is_current(files, ca_cert, wanted, now):
            _issue_server(files, ca_cert, ca_key, wanted, now)
    return files


def given_certificate(cert: Path, key: Path) -> TlsFiles:
    """An operator's certificate (chain) and key, checked: both readable PEM, the key
    unencrypted and matching the first certificate."""
    certificate = _read_certificates(cert)[0]
    private_key = _read_private_key(key)
    if _public_der(private_key.public_key()) != _public_der(certificate.public_key()):
        raise TlsError(f"TLS key {key} does not match the certificate in {cert}")
    return TlsFiles(certificate=cert, key=key, ca_certificate=None)


def server_ssl_context(files: TlsFiles) -> ssl.SSLContext:
    """A server-side context for `files`: TLS 1.2 or newer, HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(files.certificate, files.key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"cannot load the TLS certificate {files.certificate} with key {files.key}: {exc}"
        ) from None
    return context


def certificate_names(certificate: x509.Certificate) -> set[str]:
    """The subject alternative names of `certificate`, normalised like requested hosts."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    names.update(str(address) for address in san.get_values_for_type(x509.IPAddress))
    return names


# -- the CA ----------------------------------------------------------------------------------


def _load_or_create_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    if not cert_path.exists():
        return _create_ca(cert_path, key_path)
    ca_cert = _read_certificates(cert_path)[0]
    if not key_path.exists():
        raise TlsError(
            f"the local CA key {key_path} is missing; restore it, or remove {cert_path} "
            "to create a new CA (clients must then trust the new one)"
        )
    ca_key = _read_private_key(key_path)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or _public_der(
        ca_key.public_key()
    ) != _public_der(ca_cert.public_key()):
        raise TlsError(f"the local CA key {key_path} does not match {cert_path}")
    if ca_cert.not_valid_after_utc <= _now():
        raise TlsError(
            f"the local CA {cert_path} expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}; "
            f"remove it and {key_path.name} to create a new CA (clients must then trust it)"
        )
    return ca_cert, ca_key


def _create_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    # A random suffix keeps CAs of different installations apart in a trust store.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Transship"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Transship local CA {secrets.token_hex(4)}"),
        ]
    )
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a crash between the two leaves no certificate, so the next start
    # creates a new CA instead of finding a certificate without its key.
    _replace(key_path, _key_pem(key), private=True)
    _replace(cert_path, _cert_pem(certificate), private=False)
    return certificate, key


# -- the server certificate -------------------------------------------------------------------


def _server_is_current(
    files: TlsFiles, ca_cert: x509.Certificate, wanted: set[str], now: datetime.datetime
) -> bool:
    """True when the server certificate and key exist, fit together, were signed by this
    CA, stay valid for RENEW_BEFORE and name every wanted host."""
    try:
        leaf = _read_certificates(files.certificate)[0]
        key = _read_private_key(files.key)
    except TlsError:
        return False
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        return False
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if leaf.not_valid_after_utc - RENEW_BEFORE <= now or leaf.not_valid_before_utc > now:
        return False
    return wanted <= certificate_names(leaf)


def _issue_server(
    files: TlsFiles,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    wanted: set[str],
    now: datetime.datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    ordered = sorted(wanted, key=_san_order)
    alt_names: list[x509.GeneralName] = []
    for name in ordered:
        address = _address(name)
        alt_names.append(x509.IPAddress(address) if address is not None else x509.DNSName(name))
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    common_name = next((n for n in ordered if _address(n) is None and "*" not in n), "transship")
    not_after = min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Transship"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _replace(files.key, _key_pem(key), private=True)
    _replace(files.certificate, _cert_pem(certificate) + _cert_pem(ca_cert), private=False)


# -- host names -------------------------------------------------------------------------------


def _names(hosts: Sequence[str]) -> set[str]:
    """Normalised SAN values for `hosts` plus DEFAULT_HOSTS: IP addresses in canonical form,
    DNS names lower-case ASCII (IDNA) without a trailing dot."""
    names: set[str] = set()
    for host in (*DEFAULT_HOSTS, *hosts):
        text = host.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if not text:
            continue
        address = _address(text)
        if address is not None:
            if not address.is_unspecified:
                names.add(str(address))
            continue
        names.add(_dns_name(text))
    return names


def _dns_name(text: str) -> str:
    name = text.rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise TlsError(f"{text!r} is not a valid host name for a certificate") from None
    if len(name) > 253 or not _DNS_NAME.fullmatch(name):
        raise TlsError(f"{text!r} is not a valid host name for a certificate")
    return name


def _address(text: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _san_order(name: str) -> tuple[int, str]:
    """DNS names first (the common name is the first of them), then addresses."""
    return (1 if _address(name) is not None else 0, name)


# -- files ------------------------------------------------------------------------------------


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the TLS certificate {path}: {exc.strerror or exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"{path} holds no PEM certificate") from None
    return certificates


def _read_private_key(path: Path) -> CertificateIssuerPrivateKeyTypes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the TLS key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"the TLS key {path} is encrypted; give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError(f"{path} holds no PEM private key") from None
    if not isinstance(key, _SIGNING_KEYS):
        raise TlsError(f"{path} holds a {type(key).__name__}, not a key that can serve TLS")
    return key


def _public_der(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _replace(path: Path, content: str, *, private: bool) -> None:
    """Write `content` to a temporary file beside `path` and rename it over `path`, so a
    reader sees the old file or the new one, never a part."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write_private_file(temporary, content)
        if not private:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
