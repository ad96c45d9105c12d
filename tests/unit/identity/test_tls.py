"""`transship.identity.tls`: the local CA and its server certificate (creation, reuse,
reissue), operator-given certificates, real TLS handshakes on loopback, and the settings
and commands that use them."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from pydantic import ValidationError

from transship.cli.main import main
from transship.cli.server_commands import certificate_hosts
from transship.config import Settings
from transship.identity import tls
from transship.identity.tls import TlsError, TlsFiles


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def leaf_of(files: TlsFiles) -> x509.Certificate:
    return certificates(files.certificate)[0]


def ca_of(files: TlsFiles) -> x509.Certificate:
    assert files.ca_certificate is not None
    return certificates(files.ca_certificate)[0]


def ca_path(files: TlsFiles) -> Path:
    assert files.ca_certificate is not None
    return files.ca_certificate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verify_for(files: TlsFiles, name: x509.DNSName | x509.IPAddress) -> None:
    """RFC 5280 path validation of the leaf against the CA alone (raises when it fails)."""
    verifier = PolicyBuilder().store(Store([ca_of(files)])).build_server_verifier(name)
    verifier.verify(leaf_of(files), [])


# -- the local CA ---------------------------------------------------------------------------


def test_first_call_creates_a_ca_and_a_server_certificate_it_signed(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    files = tls.ensure_local_ca(directory, ["registry.example.com", "10.1.2.3", "[fd00::5]"])
    assert files == TlsFiles(
        certificate=directory / "server.pem",
        key=directory / "server-key.pem",
        ca_certificate=directory / "ca.pem",
    )
    assert mode(directory / "ca-key.pem") == 0o600
    assert mode(directory / "server-key.pem") == 0o600
    assert mode(directory) == 0o700

    ca = ca_of(files)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)

    leaf = leaf_of(files)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    )
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert datetime.timedelta(days=397) <= lifetime < datetime.timedelta(days=398)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "*.localhost",
        "registry.example.com",
    }
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("fd00::5"),
    }
    leaf.verify_directly_issued_by(ca)
    # The served chain is the leaf, then the CA.
    assert certificates(files.certificate) == [leaf, ca]


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("localhost"),
        x509.DNSName("myregistry.localhost"),
        x509.DNSName("registry.example.com"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ],
)
def test_the_server_certificate_verifies_against_the_ca(
    tmp_path: Path, name: x509.DNSName | x509.IPAddress
) -> None:
    files = tls.ensure_local_ca(tmp_path, ["registry.example.com"])
    verify_for(files, name)


def test_a_name_not_in_the_certificate_does_not_verify(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    with pytest.raises(VerificationError):
        verify_for(files, x509.DNSName("elsewhere.example.com"))


def test_later_calls_reuse_everything(tmp_path: Path) -> None:
    first = tls.ensure_local_ca(tmp_path, ["registry.example.com", "10.1.2.3"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = tls.ensure_local_ca(tmp_path, ["REGISTRY.example.com.", "10.1.2.3", "localhost"])
    assert again == first
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_new_host_reissues_the_server_certificate_with_the_same_ca(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, ["one.example.com"])
    ca_pem, old_leaf = ca_path(files).read_bytes(), leaf_of(files)
    tls.ensure_local_ca(tmp_path, ["one.example.com", "two.example.com"])
    assert ca_path(files).read_bytes() == ca_pem
    new_leaf = leaf_of(files)
    assert new_leaf.serial_number != old_leaf.serial_number
    assert {"one.example.com", "two.example.com"} <= tls.certificate_names(new_leaf)
    verify_for(files, x509.DNSName("two.example.com"))
    assert mode(files.key) == 0o600


def test_a_missing_server_certificate_is_reissued(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    files.certificate.unlink()
    tls.ensure_local_ca(tmp_path, [])
    verify_for(files, x509.DNSName("localhost"))


def test_a_certificate_about_to_expire_is_reissued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    old = leaf_of(files)
    real_now = tls._now
    monkeypatch.setattr(tls, "_now", lambda: real_now() + datetime.timedelta(days=380))
    tls.ensure_local_ca(tmp_path, [])
    new = leaf_of(files)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc + datetime.timedelta(days=300)
    # 20 days on it is still good for more than 30: kept.
    monkeypatch.setattr(tls, "_now", lambda: real_now() + datetime.timedelta(days=400))
    tls.ensure_local_ca(tmp_path, [])
    assert leaf_of(files).serial_number == new.serial_number


def test_a_server_key_that_no_longer_fits_is_replaced(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    other = tls.ensure_local_ca(tmp_path / "other", [])
    files.key.write_bytes(other.key.read_bytes())
    tls.ensure_local_ca(tmp_path, [])
    assert tls.given_certificate(files.certificate, files.key).key == files.key


def test_a_ca_without_its_key_is_an_error_not_silently_replaced(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    ca_pem = ca_path(files).read_bytes()
    (tmp_path / "ca-key.pem").unlink()
    with pytest.raises(TlsError, match=re.escape("ca-key.pem")):
        tls.ensure_local_ca(tmp_path, [])
    (tmp_path / "ca-key.pem").write_bytes((tmp_path / "server-key.pem").read_bytes())
    with pytest.raises(TlsError, match="does not match"):
        tls.ensure_local_ca(tmp_path, [])
    assert ca_path(files).read_bytes() == ca_pem


def test_an_expired_ca_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls.ensure_local_ca(tmp_path, [])
    real_now = tls._now
    monkeypatch.setattr(tls, "_now", lambda: real_now() + datetime.timedelta(days=3651))
    with pytest.raises(TlsError, match="expired"):
        tls.ensure_local_ca(tmp_path, [])


@pytest.mark.parametrize("host", ["bad host", "a..b", "-x.example", "x" * 300])
def test_an_invalid_host_name_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(TlsError, match="not a valid host name"):
        tls.ensure_local_ca(tmp_path, [host])


def test_unspecified_addresses_and_blanks_are_skipped(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, ["0.0.0.0", "::", " ", "[::1]"])
    assert tls.certificate_names(leaf_of(files)) == {"localhost", "*.localhost", "127.0.0.1", "::1"}


def test_processes_starting_at_once_agree_on_one_ca(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: tls.ensure_local_ca(tmp_path, ["x.example"]), range(6)))
    assert len(set(results)) == 1
    files = results[0]
    verify_for(files, x509.DNSName("x.example"))
    tls.given_certificate(files.certificate, files.key)
    assert not list(tmp_path.glob(".*.tmp"))


# -- operator-given certificates ----------------------------------------------------------------


def test_a_given_certificate_and_matching_key_are_accepted(tmp_path: Path) -> None:
    local = tls.ensure_local_ca(tmp_path / "ca", [])
    given = tls.given_certificate(local.certificate, local.key)
    assert given == TlsFiles(certificate=local.certificate, key=local.key, ca_certificate=None)
    assert isinstance(tls.server_ssl_context(given), ssl.SSLContext)


def test_a_key_that_does_not_match_the_certificate_is_named(tmp_path: Path) -> None:
    one = tls.ensure_local_ca(tmp_path / "one", [])
    two = tls.ensure_local_ca(tmp_path / "two", [])
    with pytest.raises(
        TlsError,
        match=f"{re.escape(str(two.key))}.*does not match.*{re.escape(str(one.certificate))}",
    ):
        tls.given_certificate(one.certificate, two.key)


def test_missing_or_malformed_files_are_named(tmp_path: Path) -> None:
    local = tls.ensure_local_ca(tmp_path / "ca", [])
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsError, match=re.escape("nope.pem")):
        tls.given_certificate(missing, local.key)
    with pytest.raises(TlsError, match=re.escape("nope.pem")):
        tls.given_certificate(local.certificate, missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a pem\n")
    with pytest.raises(TlsError, match=re.escape("junk.pem holds no PEM certificate")):
        tls.given_certificate(junk, local.key)
    with pytest.raises(TlsError, match=re.escape("junk.pem holds no PEM private key")):
        tls.given_certificate(local.certificate, junk)
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(local.key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match=re.escape("encrypted.pem is encrypted")):
        tls.given_certificate(local.certificate, encrypted)


def test_server_context_refuses_tls_below_1_2(tmp_path: Path) -> None:
    context = tls.server_ssl_context(tls.ensure_local_ca(tmp_path, []))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


# -- handshakes on loopback ------------------------------------------------------------------


async def handshake(files: TlsFiles, client: ssl.SSLContext, server_hostname: str) -> bytes:
    """Serve one TLS connection on 127.0.0.1 with `files`; connect with `client` asking for
    `server_hostname`; return what the server sent."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls.server_ssl_context(files))
    port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=client, server_hostname=server_hostname
                ),
                10,
            )
            try:
                return await asyncio.wait_for(reader.readline(), 10)
            finally:
                writer.close()
    finally:
        server.close()


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost"])
async def test_a_client_trusting_the_ca_completes_the_handshake(
    tmp_path: Path, server_hostname: str
) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    client = ssl.create_default_context(cafile=str(files.ca_certificate))
    assert await handshake(files, client, server_hostname) == b"hello\n"


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost"])
async def test_a_client_without_the_ca_refuses_the_certificate(
    tmp_path: Path, server_hostname: str
) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    other = tls.ensure_local_ca(tmp_path / "other", [])  # another installation's CA
    for client in (
        ssl.create_default_context(),
        ssl.create_default_context(cafile=str(other.ca_certificate)),
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(files, client, server_hostname)


async def test_a_client_asking_for_another_name_refuses_the_certificate(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path, [])
    client = ssl.create_default_context(cafile=str(files.ca_certificate))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(files, client, "registry.example.com")


# -- settings ---------------------------------------------------------------------------------


def test_settings_tls_defaults_and_properties(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert not settings.tls and not settings.tls_enabled
    assert settings.tls_hosts == []
    assert settings.tls_dir == tmp_path / "tls"
    assert Settings(data_dir=tmp_path, tls=True).tls_enabled
    given = Settings(data_dir=tmp_path, tls_certificate=tmp_path / "c", tls_key=tmp_path / "k")
    assert given.tls_enabled and not given.tls


def test_settings_tls_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSSHIP_TLS", "true")
    monkeypatch.setenv("TRANSSHIP_TLS_HOSTS", "registry.example.com, 10.0.0.5")
    settings = Settings()
    assert settings.tls_enabled
    assert settings.tls_hosts == ["registry.example.com", "10.0.0.5"]


@pytest.mark.parametrize(
    ("given", "missing"), [("tls_certificate", "tls_key"), ("tls_key", "tls_certificate")]
)
def test_a_certificate_without_its_key_names_the_missing_one(
    tmp_path: Path, given: str, missing: str
) -> None:
    values: dict[str, Any] = {given: tmp_path / "x.pem"}
    with pytest.raises(ValidationError, match=f"{missing} is missing"):
        Settings(**values)


def test_certificate_hosts_cover_listen_addresses_and_login_servers(tmp_path: Path) -> None:
    default = Settings(data_dir=tmp_path, hosts=("0.0.0.0", "192.0.2.7"), port=5443)
    assert certificate_hosts(default) == ["0.0.0.0", "192.0.2.7", "localhost", "*.localhost"]
    custom = Settings(
        data_dir=tmp_path,
        tls_hosts=["extra.example"],
        login_server_suffix="registry.example.com:443",
    )
    assert certificate_hosts(custom) == [
        "extra.example",
        "127.0.0.1",
        "::1",
        "registry.example.com",
        "*.registry.example.com",
    ]
    by_address = Settings(data_dir=tmp_path, login_server_suffix="[fd00::1]:5000")
    assert certificate_hosts(by_address)[-1] == "fd00::1"


# -- commands ---------------------------------------------------------------------------------


def test_export_ca_prints_or_writes_the_ca(tmp_path: Path) -> None:
    files = tls.ensure_local_ca(tmp_path / "tls", [])
    assert files.ca_certificate is not None
    runner = CliRunner()
    printed = runner.invoke(main, ["tls", "export-ca", "--data-dir", str(tmp_path)])
    assert printed.exit_code == 0, printed.output
    assert printed.output == files.ca_certificate.read_text()
    assert "PRIVATE KEY" not in printed.output
    out = tmp_path / "exported.pem"
    written = runner.invoke(main, ["tls", "export-ca", "--data-dir", str(tmp_path), "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_bytes() == files.ca_certificate.read_bytes()


def test_export_ca_without_a_ca_says_how_to_create_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tls", "export-ca", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no local CA" in result.output and "serve --tls" in result.output


def test_serve_help_lists_the_tls_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--tls", "--tls-cert", "--tls-key", "--tls-host"):
        assert option in result.output


def test_serve_with_a_certificate_but_no_key_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem")]
    )
    assert result.exit_code == 2
    assert "tls_key is missing" in result.output


def test_serve_with_a_mismatched_key_fails_before_listening(tmp_path: Path) -> None:
    one = tls.ensure_local_ca(tmp_path / "one", [])
    two = tls.ensure_local_ca(tmp_path / "two", [])
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--tls-cert",
            str(one.certificate),
            "--tls-key",
            str(two.key),
        ],
    )
    assert result.exit_code == 1
    assert "does not match" in result.output and str(two.key) in result.output
