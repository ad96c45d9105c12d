"""Import progress on stderr: a live rich bar on a terminal, one line per step otherwise.

Both read the `properties.progress` counters of an OperationStatus
(bytesTotal/bytesDone, blobsTotal/blobsDone, manifestsTotal/manifestsDone).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from transship.cli.output import human_bytes
from transship.wire.arm import OperationStatus, RateLimitWait


@dataclass(frozen=True)
class Counters:
    state: str
    bytes_total: int
    bytes_done: int
    blobs_total: int
    blobs_done: int
    manifests_total: int
    manifests_done: int
    # "waiting for upstream rate limit until …" while the import waits for a budget.
    waiting: str | None = None

    @classmethod
    def of(cls, operation: OperationStatus | None) -> Counters:
        """The counters of `operation` (all 0 when there is none: an import followed by its
        result URL alone)."""
        if operation is None:
            return cls("unknown", 0, 0, 0, 0, 0, 0)
        properties = operation.properties
        progress = properties.progress
        return cls(
            properties.state or operation.status or "unknown",
            progress.bytes_total,
            progress.bytes_done,
            progress.blobs_total,
            progress.blobs_done,
            progress.manifests_total,
            progress.manifests_done,
            properties.waiting.message if isinstance(properties.waiting, RateLimitWait) else None,
        )

    @property
    def percent(self) -> int | None:
        if self.bytes_total > 0:
            return min(100, self.bytes_done * 100 // self.bytes_total)
        items = self.blobs_total + self.manifests_total
        if items > 0:
            return min(100, (self.blobs_done + self.manifests_done) * 100 // items)
        return None

    @property
    def items(self) -> str:
        if not (self.blobs_total or self.manifests_total):
            return ""  # not planned yet
        return (
            f"blobs {self.blobs_done}/{self.blobs_total}  "
            f"manifests {self.manifests_done}/{self.manifests_total}"
        )

    def line(self) -> str:
        if self.waiting is not None:
            return self._line().rstrip() + f"  {self.waiting}"
        return self._line()

    def _line(self) -> str:
        if self.percent is None and not self.bytes_total:
            return self.state  # nothing planned yet
        percent = "" if self.percent is None else f"{self.percent:3d}%  "
        size = f"{human_bytes(self.bytes_done)} / {human_bytes(self.bytes_total)}  "
        return f"{self.state:<9} {percent}{size}{self.items}".rstrip()


class ImportProgress:
    """Context manager; call `update(operation)` with each answer about the operation (each
    long-poll answer that shows a change, or each poll)."""

    def __init__(self, console: Console, title: str, *, live: bool | None = None) -> None:
        self.console = console
        self.title = title
        self.live = console.is_terminal if live is None else live
        self.last: Counters | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._printed: tuple[str, int | None, int, int, str | None] | None = None

    def __enter__(self) -> ImportProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[items]}"),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=8,
            )
            self._progress.start()
            self._task = self._progress.add_task(f"{self.title} queued", total=None, items="")
        else:
            self.console.print(f"Importing {self.title}", highlight=False)
        return self

    def update(self, operation: OperationStatus | None) -> None:
        counters = Counters.of(operation)
        self.last = counters
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                description=f"{self.title} {counters.state}"
                + ("" if counters.waiting is None else f" ({counters.waiting})"),
                total=counters.bytes_total or None,
                completed=counters.bytes_done,
                items=counters.items,
            )
            return
        bucket = None if counters.percent is None else counters.percent // 10
        key = (
            counters.state,
            bucket,
            counters.blobs_done,
            counters.manifests_done,
            counters.waiting,
        )
        if key != self._printed:
            self._printed = key
            self.console.print(counters.line(), highlight=False, soft_wrap=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
