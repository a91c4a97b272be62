"""`dynosaur.core.progress`: plain lines when not on a terminal (at most one every N seconds, one at the end)
with rate, ETA and the stage's figures."""

from __future__ import annotations

import io

import pytest

from dynosaur.core.progress import Progress, duration, figure


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def every_5s(monkeypatch):
    monkeypatch.setenv("DYNO_PROGRESS_EVERY_S", "5")


def test_piped_lines_come_at_most_every_n_seconds_and_once_at_the_end():
    out, clock = io.StringIO(), Clock()
    with Progress("generate", 100, "calls", stream=out, clock=clock) as bar:
        for i in range(100):
            clock.now += 0.5  # 2 calls/s: 50 s in all
            bar.advance(tokens=(i + 1) * 1000, cost_usd=(i + 1) * 0.0005)
    lines = out.getvalue().splitlines()
    assert 9 <= len(lines) <= 11, lines  # ~one per 5 s of 50, plus the last
    assert lines[0] == ("generate: 10/100 calls (10%) · 2.00 calls/s · ETA 0:45 · 10,000 tokens · $0.0050")
    assert lines[-1] == "generate: 100/100 calls (100%) · 2.00 calls/s · done · 100,000 tokens · $0.0500"


def test_rate_of_a_figure_and_its_formats():
    out, clock = io.StringIO(), Clock()
    with Progress("organize", 4, "sources", rate_of="rows", stream=out, clock=clock) as bar:
        clock.now = 2.0
        bar.update(completed=4, rows=10_000)
    assert (
        out.getvalue()
        == "organize: 4/4 sources (100%) · 2.00 sources/s · 5,000 rows/s · done · 10,000 rows\n"
    )
    assert figure("loss", 1.23456) == "loss 1.2346" and figure("steps_left", 3) == "steps_left 3"
    assert duration(3725) == "1:02:05" and duration(65) == "1:05"


def test_nothing_to_do_prints_nothing():
    out = io.StringIO()
    with Progress("filter", 0, stream=out):
        pass
    assert out.getvalue() == ""
