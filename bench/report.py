"""Results: figures per benchmark, the printed table, and the JSON file.

Every :class:`Metric` holds the Transship figure, the docker-registry figure and their
ratio (Transship / docker-registry), whether higher or lower is better, and when a target
applies, its text and whether it was met.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass
class Metric:
    name: str
    unit: str
    transship: float | None
    registry: float | None
    better: Better
    target: str | None = None
    met: bool | None = None
    digits: int = 1

    @property
    def ratio(self) -> float | None:
        """Transship / docker-registry."""
        if self.transship is None or self.registry is None or self.registry == 0:
            return None
        return self.transship / self.registry

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("digits")
        out["ratio"] = self.ratio
        return out


@dataclass
class BenchResult:
    name: str
    metrics: list[Metric] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # something looked wrong
    notes: list[str] = field(default_factory=list)  # how it was measured
    details: dict[str, Any] = field(default_factory=dict)  # raw per-run figures
    error: str | None = None
    seconds: float = 0.0

    def add(self, metric: Metric) -> Metric:
        self.metrics.append(metric)
        return metric

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.error is None,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "metrics": [m.to_json() for m in self.metrics],
            "flags": self.flags,
            "notes": self.notes,
            "details": self.details,
        }


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _status(metric: Metric) -> str:
    if metric.met is None:
        return ""
    return "ok" if metric.met else "MISSED"


HEADERS = ("benchmark", "metric", "transship", "docker-registry", "T/R", "target", "")


def _rows(results: list[BenchResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for result in results:
        if result.error is not None:
            rows.append((result.name, "FAILED (see below)", "", "", "", "", ""))
            continue
        for index, m in enumerate(result.metrics):
            rows.append(
                (
                    result.name if index == 0 else "",
                    f"{m.name} ({m.unit})",
                    _num(m.transship, m.digits),
                    _num(m.registry, m.digits),
                    _num(m.ratio, 2) + ("x" if m.ratio is not None else ""),
                    m.target or "",
                    _status(m),
                )
            )
    return rows


def format_table(results: list[BenchResult]) -> str:
    """A plain-text table, then flags, notes and failures."""
    rows = [HEADERS, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {2, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    out.append("T/R = Transship / docker-registry.")
    for result in results:
        for flag in result.flags:
            out.append(f"FLAG  {result.name}: {flag}")
    for result in results:
        for note in result.notes:
            out.append(f"note  {result.name}: {note}")
    for result in results:
        if result.error is not None:
            out.append(f"FAILED {result.name}: {result.error}")
    return "\n".join(out)


def write_json(path: Path, machine: dict[str, str], mode: str, results: list[BenchResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "mode": mode,
        "ratio": "transship / docker-registry",
        "benchmarks": {r.name: r.to_json() for r in results},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
