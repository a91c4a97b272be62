"""Progress a new user can read (issue 22): at 80 columns the line always keeps done/total, ETA and the loss
(the rate and the bar go first), and a stage whose units are slow still prints a heartbeat line when stderr is
not a terminal."""

from __future__ import annotations

import io
import time

from dynosaur.core.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def training(stream: io.StringIO, clock: Clock) -> Progress:
    bar = Progress("train", 1000, "steps", rate_of="tokens", stream=stream, clock=clock)
    return bar


def test_the_line_at_80_columns_keeps_steps_eta_and_loss():
    clock = Clock()
    bar = training(io.StringIO(), clock)
    clock.now = 60.0
    bar.completed, bar.figures = 120, {"loss": 2.123456, "tokens": 1_234_567}
    full = bar.line()
    assert len(full) > 80  # everything does not fit: something must go
    short = bar.line(width=80)
    assert len(short) <= 80, short
    for part in ("120/1,000 steps", "ETA 7:20", "loss 2.1235"):
        assert part in short, short
    assert "steps/s" not in short  # the rate goes first


def test_the_terminal_bar_at_80_columns_shows_steps_eta_and_loss(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("CI", raising=False)
    out, clock = Terminal(), Clock()
    with training(out, clock) as bar:
        clock.now = 60.0
        bar.update(completed=120, loss=2.123456, tokens=1_234_567)
        rendered = bar.render_line()
    assert len(rendered) <= 80, rendered
    for part in ("120/1,000 steps", "ETA", "loss 2.1235"):
        assert part in rendered, rendered


def test_a_heartbeat_line_comes_without_updates_when_not_on_a_terminal(monkeypatch):
    monkeypatch.setenv("DYNO_HEARTBEAT_S", "0.05")
    out = io.StringIO()
    with Progress("train", 1000, "steps", stream=out) as bar:
        bar.update(completed=3, loss=4.5)
        deadline = time.monotonic() + 10
        while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        beats = out.getvalue().splitlines()
    assert len(beats) >= 2, beats
    assert beats[0].startswith("train: 3/1,000 steps") and "loss 4.5000" in beats[0]


def test_the_heartbeat_default_is_at_most_30_seconds(monkeypatch):
    monkeypatch.delenv("DYNO_HEARTBEAT_S", raising=False)
    assert 0 < Progress("generate", 1).heartbeat_s <= 30
