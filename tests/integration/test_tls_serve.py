"""`transship serve --tls` as a real process: HTTPS on loopback with a certificate from the
local CA, which `transship tls export-ca` hands out; clients trusting only that CA connect,
others refuse the certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR, TransshipServer
from transship.identity.tls import ensure_local_ca


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TransshipServer]:
    server = TransshipServer(tmp_path / "server", tls=True)
    try:
        yield server.start()
    finally:
        server.stop()
    assert not server.running


def export_ca(data_dir: Path, output: Path) -> None:
    """Run the real `transship tls export-ca -o output`."""
    subprocess.run(
        [
            sys.executable,
            *("-m", "transship", "tls", "export-ca"),
            *("--data-dir", str(data_dir), "-o", str(output)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
        env=peer_env({"PYTHONPATH": str(SRC_DIR)}),
    )


def get(url: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(url, timeout=10) as response:
        return response.status, response.read()


def test_https_verifies_with_the_exported_ca_only(
    tls_server: TransshipServer, tmp_path: Path
) -> None:
    assert tls_server.url == f"https://127.0.0.1:{tls_server.port}"
    ca = tmp_path / "exported-ca.pem"
    export_ca(tls_server.data_dir, ca)
    assert ca.read_bytes() == tls_server.ca_certificate.read_bytes()
    assert "clients should trust" in tls_server.log_text()
    assert f"https://127.0.0.1:{tls_server.port}" in tls_server.log_text()

    trusting = ssl.create_default_context(cafile=str(ca))
    assert get(f"{tls_server.url}/healthz", trusting) == (200, b"ok\n")
    assert get(f"https://localhost:{tls_server.port}/healthz", trusting)[0] == 200

    with pytest.raises(urllib.error.URLError) as refused:
        get(f"{tls_server.url}/healthz", ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_gets_no_answer(tls_server: TransshipServer) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{tls_server.port}/healthz", timeout=10
        )


def test_the_certificate_survives_a_restart(tls_server: TransshipServer) -> None:
    before = tls_server.ca_certificate.read_bytes()
    server_pem = (tls_server.data_dir / "tls" / "server.pem").read_bytes()
    tls_server.restart()
    assert tls_server.ca_certificate.read_bytes() == before
    assert (tls_server.data_dir / "tls" / "server.pem").read_bytes() == server_pem
    assert get(f"{tls_server.url}/healthz", tls_server.client_ssl_context())[0] == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_cacert(tls_server: TransshipServer, tmp_path: Path) -> None:
    another_ca = ensure_local_ca(tmp_path / "another", []).ca_certificate
    assert another_ca is not None
    curl = shutil.which("curl")
    assert curl is not None
    env = peer_env()
    url = f"{tls_server.url}/healthz"
    ok = subprocess.run(
        [curl, "-sS", "--noproxy", "*", "--cacert", str(tls_server.ca_certificate), url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "ok\n"
    for trusting in ([], ["--cacert", str(another_ca)]):  # the system store; another CA
        refused = subprocess.run(
            [curl, "-sS", "--noproxy", "*", *trusting, url],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert refused.returncode == 60, refused.stderr  # peer certificate cannot be verified
