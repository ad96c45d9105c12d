"""A resident ``az``: one process of the az venv's interpreter that runs many commands.

Started by :class:`tests.peers.azure.AzureCli` (never imported by the tests' interpreter,
which cannot import azure-cli; this file uses the standard library only), with the
environment and working directory every command of that client runs with. A fresh ``az``
spends one to two seconds importing the CLI before it does anything; this process pays
that once and then runs each command as ``bin/az`` would: ``python -m azure.cli ARGS``,
re-executing ``azure.cli.__main__`` (so telemetry, the exit code and the output are the
CLI's own code paths), with the state one process keeps between commands put back as a
fresh process has it.

Protocol (one JSON object a line): the client writes
``{"argv": [...], "stdin": PATH|null, "stdout": PATH, "stderr": PATH}`` to this process's
stdin; the command runs with file descriptors 0, 1 and 2 on those files (``/dev/null``
for a null stdin), so subprocesses the CLI starts (``docker login``) write there too; then
this process writes ``{"rc": N}`` to its stdout. EOF on stdin ends it. If a command kills
the process, the client takes its exit status as the command's, as with a subprocess.

What a fresh process has and this one restores before each command: ``os.environ`` and
the working directory as started; every logger's handlers, level and propagation as they
were after the imports (knack configures logging only when the root logger has no
handler, and binds its handlers to the stream of the moment); the MSAL token cache, HTTP
cache and service-principal store that ``azure.cli.core.auth.identity.Identity`` keeps on
the class (a fresh process reads them from the config dir); ``sys.argv``; ``sys.stdin``.
The config, profile and session files are re-read by ``get_default_cli()`` on every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import runpy
import sys
import traceback
from typing import Any


def _snapshot_logging() -> dict[str, tuple[list[logging.Handler], int, bool, bool]]:
    loggers: dict[str, Any] = {"": logging.getLogger()}
    loggers.update(logging.Logger.manager.loggerDict)
    return {
        name: (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
        for name, lg in loggers.items()
        if isinstance(lg, logging.Logger)
    }


def _restore_logging(saved: dict[str, tuple[list[logging.Handler], int, bool, bool]]) -> None:
    loggers: dict[str, Any] = {"": logging.getLogger()}
    loggers.update(logging.Logger.manager.loggerDict)
    for name, lg in loggers.items():
        if not isinstance(lg, logging.Logger):
            continue
        handlers, level, propagate, disabled = saved.get(name, ([], logging.NOTSET, True, False))
        for handler in list(lg.handlers):
            if handler not in handlers:
                lg.removeHandler(handler)
                # A file handler of the command log would otherwise stay open.
                handler.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


def _warm_up() -> None:
    """Import what every command imports (the point of this process)."""
    import azure.cli.core
    import azure.cli.core._help
    import azure.cli.core._output
    import azure.cli.core.auth.identity
    import azure.cli.core.azlogging
    import azure.cli.core.commands
    import azure.cli.core.intercept_survey
    import azure.cli.core.parser
    import azure.cli.core.telemetry  # noqa: F401
    import knack.completion  # noqa: F401


def _reset_identity_caches() -> None:
    from azure.cli.core.auth.identity import Identity

    for name in ("_msal_token_cache", "_msal_http_cache", "_service_principal_store_instance"):
        if hasattr(Identity, name):
            setattr(Identity, name, None)


def _exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process (a non-int is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run(argv: list[str]) -> int:
    sys.argv = ["az", *argv]  # run_module puts __main__.py's path first, as `python -m` does
    try:
        runpy.run_module("azure.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    own_stderr = os.dup(2)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _warm_up()
    logging_state = _snapshot_logging()
    environ = dict(os.environ)
    cwd = os.getcwd()
    stdin_encoding = sys.stdin.encoding if sys.stdin else "utf-8"

    for line in requests:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        _restore_logging(logging_state)
        _reset_identity_caches()
        stdin = os.open(request["stdin"] or os.devnull, os.O_RDONLY)
        stdout = os.open(request["stdout"], os.O_WRONLY | os.O_TRUNC)
        stderr = os.open(request["stderr"], os.O_WRONLY | os.O_TRUNC)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        for fd in (stdin, stdout, stderr):
            os.close(fd)
        # A fresh reader: nothing a former command left buffered may reach this one.
        sys.stdin = io.TextIOWrapper(
            io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=stdin_encoding
        )
        try:
            rc = _run(request["argv"])
        finally:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.flush()
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.dup2(own_stderr, 2)
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        replies.write(json.dumps({"rc": rc}) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
