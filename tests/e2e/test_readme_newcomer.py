"""The README followed as a newcomer would, from a fresh clone of this repository's HEAD.

`scripts/serve` sets up the clone's `.venv` and runs the server (with HOME in the test's
tmp dir, so the README's `~/.local/share/transship` paths hold as written); then the
README's own lines — `source .venv/bin/activate`, `transship login`, `registry create`,
`import` of docker.io/library/hello-world — run in a second shell, docker.io being routed to
a local docker-registry by the documented `[upstreams."docker.io"] endpoint` setting. The
pull commands `transship import` prints must equal the README's, and podman and skopeo
must pull with them.

Twice, each in a private mount namespace (so the machine's files stay untouched): once
where `*.localhost` resolves (`myhostname` in the hosts line of /etc/nsswitch.conf), once
on a stock machine where it does not (no `myhostname`): there `serve`, `registry create`
and `import` must say so, the pull must fail, and the `/etc/hosts` line they print —
appended to a private copy of /etc/hosts — must make it work.

Only root can make mount namespaces: other users skip. The clone is of HEAD: commit first.
By default the clone's `.venv` sees the test run's packages, so that `scripts/serve`'s
`pip install -e .` installs the project alone; TRANSSHIP_TEST_NEWCOMER_FULL_INSTALL=1 lets
it install everything from the package index, as on a new machine (minutes).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.clients import CommandResult, Podman, run_command
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, build_index, push_layout_http
from tests.peers.ports import free_port, wait_for_http
from tests.peers.procs import ManagedProcess, PeerUnavailable, peer_env, require_binary

pytestmark = [pytest.mark.peers, pytest.mark.heavy, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
MYHOSTNAME_LIBRARY = "libnss_myhostname.so.2"
STEP_TIMEOUT = 180.0
README_PORT = "localhost:5000"
# 1: scripts/serve creates .venv and installs every dependency from the package index, as on
# a new machine (minutes); otherwise the dependencies come from the test run's environment.
FULL_INSTALL_ENV = "TRANSSHIP_TEST_NEWCOMER_FULL_INSTALL"


def sysconfig_purelib_rel() -> str:
    """site-packages relative to a venv of this Python (lib/pythonX.Y/site-packages)."""
    return f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def _unavailable(reason: str) -> None:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {reason}", pytrace=False)
    pytest.skip(reason)


# -- the README ----------------------------------------------------------------------------


def readme_blocks(text: str) -> list[list[str]]:
    """The lines of every ```bash block, continuation lines (`\\`) joined."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines: list[str] = []
        pending = ""
        for raw in body.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            lines.append((pending + raw).strip())
            pending = ""
        blocks.append([line for line in lines if line])
    return blocks


def readme_line(blocks: list[list[str]], prefix: str) -> str:
    """The one README line starting with `prefix`, its `# comment` cut."""
    found = [line for block in blocks for line in block if line.startswith(prefix)]
    assert len(found) == 1, f"the README has {len(found)} lines starting with {prefix!r}"
    return found[0].split(" #", 1)[0].strip()


@dataclass(frozen=True)
class Readme:
    activate: str
    login: str
    create: str
    import_hello: str
    pull: tuple[str, ...]
    access: tuple[str, ...]
    network_rules: tuple[str, ...]

    @classmethod
    def read(cls, checkout: Path) -> Readme:
        blocks = readme_blocks((checkout / "README.md").read_text())
        pull_block = next(b for b in blocks if any(line.startswith("podman pull") for line in b))
        return cls(
            activate=readme_line(blocks, "source .venv/bin/activate"),
            login=readme_line(blocks, "transship login --server"),
            create=readme_line(blocks, "transship registry create"),
            import_hello=readme_line(
                blocks, "transship import --name myregistry --source docker.io/library/hello-world"
            ),
            pull=tuple(line.split(" #", 1)[0].strip() for line in pull_block),
            access=next(
                tuple(b) for b in blocks if any("identity sp create" in line for line in b)
            ),
            network_rules=next(
                tuple(b) for b in blocks if any("--default-action Deny" in line for line in b)
            ),
        )


# -- a private mount namespace -------------------------------------------------------------


class MountNamespace:
    """A mount namespace held open by a sleeping process; `prefix` runs a command in it
    (in `/`: nsenter changes directory). Bind mounts made in it are seen by its processes
    only."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._holder = subprocess.Popen(
            [require_binary("unshare"), "--mount", "--propagation", "private", "sleep", "3600"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        own = os.readlink("/proc/self/ns/mnt")
        while self._holder.poll() is None:
            if os.readlink(f"/proc/{self._holder.pid}/ns/mnt") != own:
                return
            assert time.monotonic() < deadline, "unshare did not make a mount namespace"
            time.sleep(0.01)
        _unavailable(f"unshare --mount failed (exit {self._holder.returncode})")

    @property
    def prefix(self) -> list[str]:
        return [require_binary("nsenter"), "-t", str(self._holder.pid), "-m", "--"]

    def bind(self, source: Path, target: str) -> None:
        run_command([*self.prefix, "mount", "--bind", str(source), target], timeout=30)

    def private_copy(self, target: str, text: str) -> None:
        """Bind a file holding `text` over `target` in the namespace."""
        copy = self.workdir / Path(target).name
        copy.write_text(text)
        self.bind(copy, target)

    def close(self) -> None:
        self._holder.kill()
        self._holder.wait()


def nsswitch_hosts(modules: str) -> str:
    """/etc/nsswitch.conf with its hosts line replaced."""
    text = Path("/etc/nsswitch.conf").read_text()
    line = f"hosts:          {modules}"
    if re.search(r"(?m)^hosts:", text):
        return re.sub(r"(?m)^hosts:.*$", line, text)
    return f"{text}\n{line}\n"


# -- the clone and its .venv ---------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this repository's HEAD whose `scripts/serve` has set up `.venv`
    (the first `scripts/serve` does: `--help` makes it stop there)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mount namespaces stand in for a machine without *.localhost")
    for program in ("git", "unshare", "nsenter", "podman", "skopeo", "docker-registry"):
        if shutil.which(program) is None:
            _unavailable(f"{program!r} is not installed (scripts/test installs it)")
    head = run_command(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"]).text.strip()
    clone = tmp_path_factory.mktemp("newcomer") / "transship"
    run_command(["git", "clone", "-q", "--no-checkout", str(REPO_ROOT), str(clone)], timeout=120)
    run_command(["git", "-C", str(clone), "checkout", "-q", head], timeout=120)
    if os.environ.get(FULL_INSTALL_ENV) != "1":
        # The venv scripts/serve would make, seeing the test run's packages: its own
        # `pip install -e .` then installs the project only, not ~30 packages from the index.
        run_command([sys.executable, "-m", "venv", str(clone / ".venv")])
        (clone / ".venv" / sysconfig_purelib_rel() / "test-run-packages.pth").write_text(
            "\n".join(p for p in sys.path if p.endswith("-packages")) + "\n"
        )
    setup = run_command(
        [str(clone / "scripts" / "serve"), "--help"], env=peer_env(), timeout=900, check=False
    )
    assert setup.returncode == 0, setup.error_text
    assert "Run the registry server" in setup.text
    return clone


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DistributionRegistry, BuiltIndex]]:
    """docker-registry standing in for Docker Hub, with library/hello-world:latest."""
    workdir = tmp_path_factory.mktemp("hub")
    try:
        registry = DistributionRegistry(workdir / "registry", "anonymous").start()
    except PeerUnavailable as exc:
        _unavailable(str(exc))
        raise
    try:
        built = build_index(
            OciLayout(workdir / "layout"),
            seed="newcomer-hello",
            platforms=("linux/amd64", "linux/arm64"),
        )
        push_layout_http(built, registry.url, "library/hello-world", "latest")
        yield registry, built
    finally:
        registry.stop()


# -- the walk ------------------------------------------------------------------------------


@dataclass
class Newcomer:
    """One person's machine: a mount namespace, a HOME, a server started by scripts/serve,
    and a shell in the checkout for the README's lines."""

    checkout: Path
    workdir: Path
    namespace: MountNamespace
    port: int
    env: Mapping[str, str]
    podman: Podman
    server: ManagedProcess | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["HOME"])

    def serve(self) -> None:
        self.server = ManagedProcess(
            [
                *self.namespace.prefix,
                str(self.checkout / "scripts" / "serve"),
                "--port",
                str(self.port),
            ],
            log_path=self.workdir / "serve.log",
            env=self.env,
            cwd=self.workdir,
        ).start()
        server = self.server
        wait_for_http(
            f"http://127.0.0.1:{self.port}/healthz",
            60,
            statuses={200},
            alive=lambda: server.running,
        )

    def serve_log(self) -> str:
        return self.server.log_text() if self.server is not None else ""

    def shell(
        self, script: str, *, input: bytes | None = None, check: bool = True
    ) -> CommandResult:
        """`script` in bash, in the checkout, in the namespace, with the podman/skopeo
        isolation of the test (storage and auth file; no flag added to the commands)."""
        return run_command(
            [
                *self.namespace.prefix,
                "bash",
                "-c",
                f"set -e\ncd {shlex.quote(str(self.checkout))}\n{script}",
            ],
            env={**self.env, **self.podman.env(), "HOME": str(self.home)},
            cwd=self.checkout,
            input=input,
            timeout=STEP_TIMEOUT,
            check=check,
        )

    def transship(self, readme: Readme, line: str) -> CommandResult:
        """A README line in a second terminal: the activate line first, as the README says."""
        return self.shell(f"{readme.activate}\n{self.local(line)}")

    def local(self, line: str) -> str:
        return line.replace(README_PORT, f"localhost:{self.port}")

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.podman.close()
        self.namespace.close()


@pytest.fixture(params=["resolving", "stock"])
def newcomer(request: pytest.FixtureRequest, checkout: Path, tmp_path: Path) -> Iterator[Newcomer]:
    namespace = MountNamespace(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in peer_env().items()
        if not k.startswith(("XDG_", "TRANSSHIP_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update({"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    person = Newcomer(checkout, tmp_path, namespace, free_port(), env, Podman(tmp_path / "podman"))
    try:
        if request.param == "resolving":
            if not any(
                Path(d, MYHOSTNAME_LIBRARY).exists()
                for d in (
                    "/lib/x86_64-linux-gnu",
                    "/lib/aarch64-linux-gnu",
                    "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib/aarch64-linux-gnu",
                )
            ):
                _unavailable("libnss-myhostname is not installed (scripts/test installs it)")
            namespace.private_copy("/etc/nsswitch.conf", nsswitch_hosts("files myhostname dns"))
        else:
            namespace.private_copy("/etc/nsswitch.conf", nsswitch_hosts("files dns"))
        yield person
    finally:
        person.close()


def test_readme_from_a_fresh_clone(
    newcomer: Newcomer, hub: tuple[DistributionRegistry, BuiltIndex], request: pytest.FixtureRequest
) -> None:
    stock = request.node.callspec.params["newcomer"] == "stock"
    upstream, built = hub
    readme = Readme.read(newcomer.checkout)
    config = newcomer.workdir / "transship.toml"
    config.write_text(f'[upstreams."docker.io"]\nendpoint = "{upstream.url}"\ninsecure = true\n')
    newcomer.env = {**newcomer.env, "TRANSSHIP_CONFIG": str(config)}

    newcomer.serve()
    venv_bin = newcomer.checkout.resolve() / ".venv" / "bin"
    assert f"source {venv_bin}/activate" in newcomer.serve_log()
    if stock:
        deadline = time.monotonic() + 10
        while "do not resolve" not in newcomer.serve_log():
            assert time.monotonic() < deadline, newcomer.serve_log()
            time.sleep(0.1)
        log = newcomer.serve_log()
        assert "libnss-myhostname" in log and "myhostname" in log, log
        assert "/etc/hosts" in log, log

    # The README's lines, verbatim but for the port, in a second shell.
    credential = json.loads(
        (newcomer.home / ".local/share/transship/owner-credential.json").read_text()
    )
    newcomer.transship(readme, readme.login)
    created = newcomer.transship(readme, readme.create)
    assert f"myregistry.localhost:{newcomer.port}" in created.text
    imported = newcomer.transship(readme, readme.import_hello)
    assert "Imported docker.io/library/hello-world:latest into myregistry" in imported.text

    # What import printed is what the README shows.
    printed = [
        line.strip()
        for line in imported.error_text.splitlines()
        if line.strip().startswith(("podman ", "skopeo "))
    ]
    expected = [
        newcomer.local(line).replace("<clientId>", credential["clientId"]) for line in readme.pull
    ]
    assert printed == expected, imported.error_text
    login, pull, copy = printed

    hosts_line = "echo '127.0.0.1 myregistry.localhost' >> /etc/hosts"
    for said in (created.error_text, imported.error_text):
        assert ("does not resolve" in said) == stock, said
        assert (hosts_line in said) == stock, said
        assert ("libnss-myhostname" in said) == stock, said
    secret = credential["clientSecret"].encode() + b"\n"
    if stock:
        refused = newcomer.shell(f"{login} --password-stdin", input=secret, check=False)
        assert refused.returncode != 0
        # The printed fix, run as printed, on the namespace's private copy of /etc/hosts.
        newcomer.namespace.private_copy("/etc/hosts", Path("/etc/hosts").read_text())
        newcomer.shell(hosts_line)

    # The printed commands; `--password-stdin` only stands in for typing the secret.
    newcomer.shell(f"{login} --password-stdin", input=secret)
    newcomer.shell(pull)
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "amd64"
    want = built.child(f"linux/{arch}").digest
    pulled = newcomer.shell(f"podman image inspect --format '{{{{.Digest}}}}' {pull.split()[-1]}")
    assert pulled.text.strip() == built.digest  # podman records the index it pulled
    workdir = newcomer.workdir / "pulled"
    workdir.mkdir()
    newcomer.shell(f"cd {workdir}\n{copy}")
    index = json.loads((workdir / "hello-world" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [want]

    if stock:
        return
    # The README's Access block, pasted (the appId it asks for is the one sp create printed),
    # takes effect: anonymous pull works once podman forgets the login.
    app_id = ""
    for line in readme.access:
        if line.startswith("transship "):
            done = newcomer.transship(readme, line.replace("<appId>", app_id))
            if "identity sp create" in line:
                app_id = re.findall(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}", done.text)[0]
        else:
            assert line.startswith("podman login --tls-verify=false -u <appId or token name> ")
    assert app_id
    newcomer.shell(f"podman logout myregistry.localhost:{newcomer.port}\npodman rmi -a\n{pull}")

    # The README's network-rule block, pasted as is but for its last line (the undo), must
    # not lock this machine out: the pull still works under Deny.
    *rules, undo = readme.network_rules
    assert "--default-action Allow" in undo
    for line in rules:
        newcomer.transship(readme, line)
    shown = newcomer.transship(readme, "transship registry network-rule list -n myregistry -o json")
    network = json.loads(shown.text)
    assert network["defaultAction"] == "Deny"
    assert {"127.0.0.1/32", "::1/128"} <= {r["value"] for r in network["ipRules"]}
    newcomer.shell(f"podman rmi -a\n{pull}")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("hosts:          files dns", "hosts:          files myhostname dns"),
        ("hosts: files mdns4_minimal [NOTFOUND=return] dns", None),
        ("hosts:          files myhostname dns", "hosts:          files myhostname dns"),
    ],
)
def test_the_readme_nsswitch_fix_adds_myhostname_once(
    tmp_path: Path, before: str, after: str | None
) -> None:
    """The README's `sed` line (run on a copy: a bind-mounted file cannot be replaced)."""
    sed = readme_line(readme_blocks((REPO_ROOT / "README.md").read_text()), "sed -i -E")
    conf = tmp_path / "nsswitch.conf"
    conf.write_text(f"passwd:         files\n{before}\nnetworks:       files\n")
    run_command(["bash", "-c", sed.replace("/etc/nsswitch.conf", shlex.quote(str(conf)))])
    want = after or before.replace("files", "files myhostname", 1)
    assert conf.read_text() == f"passwd:         files\n{want}\nnetworks:       files\n"
