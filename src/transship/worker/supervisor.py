"""One supervisor for a process's background loops (imports, lease heartbeats, GC, signing-key
refresh): it runs each named loop as a task, logs a crash with its traceback, restarts the
loop after an exponential backoff, and records each loop's liveness for `/readyz`.

A loop is an async function taking a `beat` callable, which it calls whenever it finished a
unit of work (a claim round, a GC run…); it is meant to run until cancelled. Returning is
treated like a crash: a loop that ends is restarted too. Cancelling the supervisor
(`stop()`, at shutdown) cancels every loop: no restart, no error logged.

A loop whose cancellation was swallowed ends at its next beat: once its task has been
cancelled, `beat` raises CancelledError. On Python 3.11, `asyncio.wait_for` returns the
awaited result instead of raising when that result and the cancellation arrive in the same
loop iteration (a wake-up at the moment of shutdown), and a `while True` loop around it then
ran on until `stop()` gave up on it after its grace. Likewise, a loop that raises another
error while its task is being cancelled (a driver that turns the interruption into an error
of its own) has ended: it is not restarted.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

Beat = Callable[[], None]
Loop = Callable[[Beat], Awaitable[None]]


class LoopState(StrEnum):
    RUNNING = "running"
    BACKING_OFF = "backing_off"  # crashed; waiting out the backoff before the restart
    STOPPED = "stopped"  # not started yet, or cancelled at shutdown


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: `initial_seconds`, multiplied by `factor` after each consecutive crash,
    at most `max_seconds`. A run that lasted `healthy_seconds` ends the crash streak, so the
    next crash waits `initial_seconds` again."""

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    factor: float = 2.0
    healthy_seconds: float = 60.0

    def delay(self, consecutive_crashes: int) -> float:
        """The wait before restarting a loop that has crashed `consecutive_crashes` (≥ 1) times
        in a row."""
        # The exponent is capped so that thousands of crashes cannot overflow the float.
        exponent = min(max(consecutive_crashes - 1, 0), 32)
        return min(self.max_seconds, self.initial_seconds * self.factor**exponent)


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """One loop's liveness at the moment it was read. Ages are in seconds.

    `failing_seconds`: how long the current crash streak has lasted (None: no crash since the
    loop last ran for a healthy period). `last_error`: the type of the last crash's exception,
    never its message (messages can carry a database URL or statement parameters; the log has
    the full traceback)."""

    name: str
    state: LoopState
    restarts: int
    last_error: str | None
    failing_seconds: float | None
    heartbeat_age_seconds: float | None

    def unready(self, bound_seconds: float) -> bool:
        """Whether the loop is down (backing off after a crash) and its crash streak has lasted
        at least `bound_seconds`."""
        return (
            self.state is LoopState.BACKING_OFF
            and self.failing_seconds is not None
            and self.failing_seconds >= bound_seconds
        )


def error_summary(exc: BaseException) -> str:
    """The exception's type, qualified by its module unless it is a builtin: never its text."""
    kind = type(exc)
    if kind.__module__ == builtins.__name__:
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclass(eq=False)
class _Entry:
    """A loop's mutable record; only the supervisor writes it."""

    name: str
    loop: Loop
    state: LoopState = LoopState.STOPPED
    restarts: int = 0
    crashes: int = 0  # consecutive, for the backoff
    failing_since: float | None = None
    run_began: float | None = None
    last_error: str | None = None
    last_beat: float | None = None
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Runs named background loops and restarts them when they crash.

    `clock` (monotonic seconds) and `sleep` are the supervisor's only notion of time, so a
    test can drive backoff and healthy periods without waiting.
    """

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stop_grace_seconds: float = 30.0,
    ) -> None:
        self._backoff = backoff or Backoff()
        self._stop_grace = stop_grace_seconds
        self._clock = clock
        self._sleep = sleep
        self._entries: dict[str, _Entry] = {}
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._started = False

    def add(self, name: str, loop: Loop) -> None:
        """Register `loop` under `name`. Raises ValueError for a name already taken, and
        RuntimeError once the supervisor has started."""
        if self._started:
            raise RuntimeError("loops are added before the supervisor starts")
        if name in self._entries:
            raise ValueError(f"a loop named {name!r} is already supervised")
        self._entries[name] = _Entry(name, loop)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` in `stop()`, after every loop has been cancelled (e.g. hand running
        import jobs back to the queue, whatever state their loops were in)."""
        self._on_stop.append(hook)

    def start(self) -> None:
        """Start every loop (needs a running event loop). Raises RuntimeError when started
        twice."""
        if self._started:
            raise RuntimeError("the supervisor is already started")
        self._started = True
        for entry in self._entries.values():
            entry.task = asyncio.create_task(self._supervise(entry), name=f"loop:{entry.name}")

    async def stop(self) -> None:
        """Cancel every loop and wait for each to end, then run the stop hooks. A hook's
        failure is logged; the others still run. A loop still running `stop_grace_seconds`
        after its cancellation is logged by name and left behind: a stuck loop must not
        hold up the process's shutdown (nor the hooks that hand import jobs back)."""
        running = {
            entry.task: entry.name for entry in self._entries.values() if entry.task is not None
        }
        for task in running:
            task.cancel()
        if running:
            ended, stuck = await asyncio.wait(running, timeout=self._stop_grace)
            for task in ended:
                if not task.cancelled():
                    task.exception()  # retrieved (a loop's failures are logged as they happen)
            for task in stuck:
                log.error(
                    "background loop %s did not end within %.0f s of its cancellation; "
                    "stopping without it",
                    running[task],
                    self._stop_grace,
                )
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("stopping the background loops: a shutdown step failed")

    def status(self) -> dict[str, LoopStatus]:
        """Each loop's liveness now, in the order they were added."""
        now = self._clock()
        return {entry.name: self._status(entry, now) for entry in self._entries.values()}

    def unready(self, bound_seconds: float) -> list[LoopStatus]:
        """The loops that are down and have been failing for at least `bound_seconds`."""
        return [status for status in self.status().values() if status.unready(bound_seconds)]

    async def wait_for(self, predicate: Callable[[Mapping[str, LoopStatus]], bool]) -> None:
        """Return once `predicate(self.status())` holds; it is re-checked on every state change
        and heartbeat (a test's or a readiness waiter's event, instead of polling)."""
        while not predicate(self.status()):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    # -- internals ---------------------------------------------------------------------------
    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _set_state(self, entry: _Entry, state: LoopState) -> None:
        entry.state = state
        self._changed()

    def _status(self, entry: _Entry, now: float) -> LoopStatus:
        failing_since = entry.failing_since
        if (
            entry.state is LoopState.RUNNING
            and entry.run_began is not None
            and now - entry.run_began >= self._backoff.healthy_seconds
        ):
            failing_since = None  # running for a healthy period: the streak is over
        return LoopStatus(
            name=entry.name,
            state=entry.state,
            restarts=entry.restarts,
            last_error=entry.last_error,
            failing_seconds=None if failing_since is None else now - failing_since,
            heartbeat_age_seconds=None if entry.last_beat is None else now - entry.last_beat,
        )

    def _beat_for(self, entry: _Entry) -> Beat:
        def beat() -> None:
            entry.last_beat = self._clock()
            self._changed()
            task = asyncio.current_task()
            if task is not None and task is entry.task and task.cancelling():
                # Cancelled, yet still running: something swallowed the CancelledError
                # (see the module docstring). Only in the loop's own task: a beat from a
                # task the loop started is not the loop's to end.
                raise asyncio.CancelledError

        return beat

    async def _supervise(self, entry: _Entry) -> None:
        beat = self._beat_for(entry)
        try:
            while True:
                began = entry.run_began = self._clock()
                self._set_state(entry, LoopState.RUNNING)
                error: BaseException
                try:
                    await entry.loop(beat)
                    error = RuntimeError(f"the loop {entry.name!r} returned")
                except asyncio.CancelledError as exc:
                    # Our own cancellation (shutdown) ends supervision; a CancelledError the
                    # loop raised by itself (a future it awaited was cancelled) is a crash.
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise
                    error = exc
                except Exception as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # Our cancellation, turned into another error on its way out (a
                        # database driver interrupted mid-call raises its own): still the
                        # end. Backing off instead would wait out the delay, since a task
                        # is told of its cancellation once.
                        raise asyncio.CancelledError from exc
                    error = exc
                now = self._clock()
                if now - began >= self._backoff.healthy_seconds:
                    entry.crashes, entry.failing_since = 0, None
                entry.crashes += 1
                if entry.failing_since is None:
                    entry.failing_since = now
                entry.last_error = error_summary(error)
                delay = self._backoff.delay(entry.crashes)
                log.error(
                    "background loop %r crashed (%d in a row); restarting in %.1f s",
                    entry.name,
                    entry.crashes,
                    delay,
                    exc_info=error,
                )
                self._set_state(entry, LoopState.BACKING_OFF)
                await self._sleep(delay)
                entry.restarts += 1
        finally:
            # Only cancellation (or a BaseException such as KeyboardInterrupt) gets here.
            self._set_state(entry, LoopState.STOPPED)
