"""One stage's progress, written once for every stage: a rich bar with rate and ETA on a terminal; plain lines,
at most one every `DYNO_PROGRESS_EVERY_S` seconds (default 10) and one at the end, when stderr is not a
terminal (`dvc repro` piped to a log, CI). Both show the same figures: done/total, rate, ETA and the stage's
own (tokens, cost, rows, loss).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from dynosaur.core.text import printable

EVERY_S = 10.0
# figure name → how it reads; others read as `name value`
FORMATS = {
    "tokens": "{:,} tokens",
    "cost_usd": "${:.4f}",
    "rows": "{:,} rows",
    "loss": "loss {:.4f}",
}


def interactive(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI")


def every_s() -> float:
    try:
        return max(0.0, float(os.environ.get("DYNO_PROGRESS_EVERY_S", EVERY_S)))
    except ValueError:
        return EVERY_S


def figure(name: str, value: Any) -> str:
    fmt = FORMATS.get(name)
    return fmt.format(value) if fmt else f"{name} {value}"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Count `total` units of a stage's work: `advance()` per unit (or `update(completed=...)`), with the
    stage's running figures as keywords (`tokens=`, `cost_usd=`, `rows=`, `loss=`). `rate_of` names a figure
    whose rate is shown beside the units' (organize: rows/s). Use as a context manager."""

    def __init__(
        self,
        stage: str,
        total: int,
        unit: str = "items",
        *,
        rate_of: str | None = None,
        stream: TextIO | None = None,
        clock: Any = time.monotonic,
    ):
        self.stage, self.total, self.unit, self.rate_of = stage, total, unit, rate_of
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.completed = 0
        self.figures: dict[str, Any] = {}
        self.every_s = every_s()
        self.start = self.last_line = clock()
        self._bar: Any = None
        self._task: Any = None

    # --- what both forms show -------------------------------------------------------------------------

    def rate(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        parts = [f"{self.completed / elapsed:,.2f} {self.unit}/s"]
        if self.rate_of and self.rate_of in self.figures:
            parts.append(f"{self.figures[self.rate_of] / elapsed:,.0f} {self.rate_of}/s")
        return " · ".join(parts)

    def eta(self) -> str:
        if self.completed >= self.total:
            return "done"
        if not self.completed:
            return "ETA ?"
        elapsed = self.clock() - self.start
        return f"ETA {duration(elapsed * (self.total - self.completed) / self.completed)}"

    def extras(self) -> str:
        return " · ".join(figure(k, v) for k, v in self.figures.items())

    def line(self) -> str:
        pct = f" ({self.completed / self.total:.0%})" if self.total else ""
        parts = [f"{self.stage}: {self.completed:,}/{self.total:,} {self.unit}{pct}", self.rate(), self.eta()]
        if self.figures:
            parts.append(self.extras())
        return printable(" · ".join(parts))

    # --- updating -------------------------------------------------------------------------------------

    def advance(self, n: int = 1, **figures: Any) -> None:
        self.update(completed=self.completed + n, **figures)

    def update(self, completed: int | None = None, **figures: Any) -> None:
        if completed is not None:
            self.completed = completed
        self.figures.update(figures)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.completed, rate=self.rate(), figures=printable(self.extras())
            )
        elif self.clock() - self.last_line >= self.every_s and self.completed < self.total:
            self._print()

    def _print(self) -> None:
        self.last_line = self.clock()
        print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        if interactive(self.stream):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[figures]}"),
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task(printable(self.stage), total=self.total, rate="", figures="")
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self.update()
            self._bar.stop()  # the finished bar stays on screen: the stage's last figures
        elif self.total or self.completed:
            self._print()
