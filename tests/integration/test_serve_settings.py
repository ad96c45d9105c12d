"""`transship serve` refuses settings that cannot work before it binds anything: real
`python -m transship serve` processes with a TOML file (`TRANSSHIP_CONFIG`), their exit
code and message checked, and the corrected file starting a server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.peers.ports import LOOPBACK, free_port
from tests.peers.procs import peer_env
from tests.peers.transship import SRC_DIR, TransshipServer

HEADER = "Error: settings that cannot work (see docs/configuration.md):\n"


def run_serve(workdir: Path, config: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `serve` with `config` as its TOML file; it must exit on its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "transship.toml"
    path.write_text(config)
    port = free_port()
    env = {k: v for k, v in peer_env().items() if not k.startswith("TRANSSHIP_")}
    env.update({"TRANSSHIP_CONFIG": str(path), "PYTHONPATH": str(SRC_DIR)})
    argv = [sys.executable, "-m", "transship", "serve", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--data-dir", str(workdir / "data")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=workdir)
    return done, port


def assert_stopped_before_starting(workdir: Path, port: int) -> None:
    """Nothing was set up: no data directory, and the port is free."""
    assert not (workdir / "data").exists()
    with socket.socket() as probe:
        probe.bind((LOOPBACK, port))


def test_an_http_endpoint_without_insecure_stops_serve(tmp_path: Path) -> None:
    done, port = run_serve(
        tmp_path, '[upstreams."docker.io"]\nendpoint = "http://127.0.0.1:5001"\n'
    )
    assert done.returncode == 1, done
    assert done.stderr == (
        HEADER + "  upstreams.\"docker.io\": endpoint 'http://127.0.0.1:5001' for upstream "
        "host 'docker.io' is plain http://; set insecure = true to allow it\n"
    )
    assert done.stdout == ""
    assert_stopped_before_starting(tmp_path, port)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = (
        '[upstreams."quay.io"]\nendpoint = "quay-mirror.internal:5000"\n\n'
        "[egress]\n"
        'rules = [{ action = "allow", target = "169.254.169.254" }]\n'
    )
    done, port = run_serve(tmp_path, config)
    assert done.returncode == 1, done
    assert done.stderr == (
        HEADER + "  upstreams.\"quay.io\": invalid endpoint 'quay-mirror.internal:5000' for "
        "upstream host 'quay.io': no scheme (write https://…, or http://… with insecure = "
        "true)\n"
        "  egress.rules[0]: allow 169.254.169.254/32 never takes effect: built-in: link-local "
        "169.254.0.0/16 is denied whatever the rules say\n"
    )
    assert_stopped_before_starting(tmp_path, port)


def test_a_value_of_the_wrong_kind_is_refused_naming_the_setting(tmp_path: Path) -> None:
    done, port = run_serve(tmp_path, '[egress]\ndefault = "maybe"\n')
    assert done.returncode == 2, done
    assert "egress.default: Input should be 'allow' or 'deny'" in done.stderr
    assert_stopped_before_starting(tmp_path, port)


def test_the_corrected_settings_start(tmp_path: Path) -> None:
    config = tmp_path / "transship.toml"
    config.write_text(
        '[upstreams."docker.io"]\nendpoint = "http://127.0.0.1:5001"\ninsecure = true\n\n'
        '[upstreams."quay.io"]\nendpoint = "https://quay-mirror.internal:5000"\n'
    )
    server = TransshipServer(tmp_path / "ok", env={"TRANSSHIP_CONFIG": str(config)})
    server.start()
    try:
        assert server.running
    finally:
        assert server.stop() == 0
    assert "settings that cannot work" not in server.log_text()
    assert os.path.isdir(server.data_dir)
