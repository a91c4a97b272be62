"""One stage's progress, written once for every stage: a rich bar with rate and ETA on a terminal; plain lines,
at most one every `DYNO_PROGRESS_EVERY_S` seconds (default 10) and one at the end, when stderr is not a
terminal (`dvc repro` piped to a log, CI). Both show the same figures: done/total, rate, ETA and the stage's
own (tokens, cost, rows, loss).

On a narrow terminal the bar shrinks first, then the rate and the less useful figures go: done/total, the
ETA and the loss always show (80 columns is enough). Off a terminal, a heartbeat line comes at least every
`DYNO_HEARTBEAT_S` seconds (default 30) even when no unit finishes, so a slow step never looks like a hang.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from typing import Any, TextIO

from dynosaur.core.text import printable

EVERY_S = 10.0
HEARTBEAT_S = 30.0
BAR_WIDTH = 20
# Figures that stay on a narrow line, most important first; the rest go before them, and the rate first of all.
KEEP = ("loss", "cost_usd")
# figure name → how it reads; others read as `name value`
FORMATS = {
    "tokens": "{:,} tokens",
    "cost_usd": "${:.4f}",
    "rows": "{:,} rows",
    "loss": "loss {:.4f}",
}


def interactive(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI")


def every_s(variable: str = "DYNO_PROGRESS_EVERY_S", default: float = EVERY_S) -> float:
    try:
        return max(0.0, float(os.environ.get(variable, default)))
    except ValueError:
        return default


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
        self.heartbeat_s = min(every_s("DYNO_HEARTBEAT_S", HEARTBEAT_S) or HEARTBEAT_S, HEARTBEAT_S)
        self.start = self.last_line = clock()
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None

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

    def line(self, width: int | None = None, *, named: bool = True) -> str:
        """done/total · rate · ETA · figures; within `width` characters, the rate goes first, then the
        figures but those in `KEEP`, then those: done/total and the ETA always stay."""
        pct = f" ({self.completed / self.total:.0%})" if self.total else ""
        head = f"{self.stage + ': ' if named else ''}{self.completed:,}/{self.total:,} {self.unit}{pct}"
        figures = {k: figure(k, v) for k, v in self.figures.items()}
        parts = {"head": head, "rate": self.rate(), "eta": self.eta(), **figures}
        # What goes first when the line is too long: the rate, the other figures (last first), KEEP's.
        others = [k for k in figures if k not in KEEP][::-1]
        droppable = ["rate", *others, *[k for k in reversed(KEEP) if k in figures]]
        while width is not None and droppable and len(printable(" · ".join(parts.values()))) > width:
            del parts[droppable.pop(0)]
        return printable(" · ".join(parts.values()))

    def render_line(self) -> str:
        """What the terminal shows now (the bar and the line), as plain text."""
        if self._bar is None:
            return self.line()
        from rich.console import Console

        buffer = io.StringIO()
        width = self._bar.console.width
        Console(file=buffer, width=width, color_system=None).print(
            self._bar.make_tasks_table(self._bar.tasks)
        )
        return buffer.getvalue().rstrip("\n")

    # --- updating -------------------------------------------------------------------------------------

    def advance(self, n: int = 1, **figures: Any) -> None:
        self.update(completed=self.completed + n, **figures)

    def update(self, completed: int | None = None, **figures: Any) -> None:
        if completed is not None:
            self.completed = completed
        self.figures.update(figures)
        if self._bar is not None:
            self._fit()
        elif self.clock() - self.last_line >= self.every_s and self.completed < self.total:
            self._print()

    def _fit(self) -> None:
        """The terminal's line: the stage, the bar in what the text leaves (none if too little), the text."""
        name = printable(self.stage)
        width = self._bar.console.width - 1 - len(name) - 1
        text = self.line(width, named=False)
        spare = width - len(text) - 1
        self._bar_column.bar_width = min(BAR_WIDTH, spare)
        shown = (self._bar_column, self._text_column) if spare >= 5 else (self._text_column,)
        self._bar.columns = (self._name_column, *shown)
        self._bar.update(self._task, completed=self.completed, line=text)

    def _print(self) -> None:
        with self._lock:
            self.last_line = self.clock()
            print(self.line(), file=self.stream, flush=True)

    def _beat(self) -> None:
        """Off a terminal: the line again whenever none came for `heartbeat_s` (a slow step, a long call)."""
        while not self._stop.wait(max(0.01, self.heartbeat_s - (self.clock() - self.last_line))):
            if self.clock() - self.last_line >= self.heartbeat_s:
                self._print()

    def __enter__(self) -> Progress:
        if interactive(self.stream):
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar_column = BarColumn(bar_width=BAR_WIDTH)
            self._text_column = TextColumn("{task.fields[line]}")
            self._name_column = TextColumn("{task.description}")
            self._bar = Bar(self._bar_column, self._text_column, console=Console(file=self.stream))
            self._task = self._bar.add_task(printable(self.stage), total=self.total, line="")
            self._fit()
            self._bar.start()
        elif self.total:
            self._heart = threading.Thread(target=self._beat, name=f"{self.stage}-heartbeat", daemon=True)
            self._heart.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._heart is not None:
            self._heart.join()
        if self._bar is not None:
            self.update()
            self._bar.stop()  # the finished bar stays on screen: the stage's last figures
        elif self.total or self.completed:
            self._print()
