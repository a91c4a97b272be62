"""`dyno` in a real 80-column terminal (a tmux pane): tables fit without wrapping, ids whole on their line;
progress is a rich bar on a terminal and plain lines when piped."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cli import demo_project

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
SRC = Path(__file__).resolve().parents[2] / "src"
WIDTH = 80

pytestmark = pytest.mark.skipif(not Path(TMUX).exists(), reason="needs tmux")


class Pane:
    """A tmux server of its own with a detached session WIDTH columns wide; each command runs in a window of
    its own (no shell, no prompt) that stays after the command exits, to be captured."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.socket = f"dyno-{uuid.uuid4().hex[:8]}"
        self.cwd, self.env, self.n = cwd, env, 0
        self.tmux("new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", "300", "-c", str(cwd), "sleep 600")
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        # a user's terminal: CI=true (set by CI) turns the bar off on purpose (dynosaur.core.progress)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX", "CI")}
        return subprocess.run(
            [TMUX, "-L", self.socket, "-f", os.devnull, *args],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout

    def run(self, command: str, timeout: float = 60) -> tuple[list[str], list[str]]:
        """Run `command` in a new window: (rows as the pane shows them, lines with wrapped rows joined)."""
        self.n += 1
        window = f"t:w{self.n}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        self.tmux(
            "new-window",
            "-d",
            "-n",
            f"w{self.n}",
            "-c",
            str(self.cwd),
            f"env {exports} bash -c {shlex.quote(command)}",
        )
        deadline = time.monotonic() + timeout
        while self.tmux("display-message", "-p", "-t", window, "#{pane_dead}").strip() != "1":
            if time.monotonic() > deadline:
                raise AssertionError(f"{command} did not finish")
            time.sleep(0.1)

        def capture(*flags: str) -> list[str]:
            lines = self.tmux("capture-pane", "-p", "-S", "-", *flags, "-t", window).split("\n")
            lines = [line.rstrip() for line in lines if not line.startswith("Pane is dead")]
            while lines and not lines[-1]:
                lines.pop()
            while lines and not lines[0]:
                lines.pop(0)
            return lines

        return capture(), capture("-J")

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("terminal")
    ids = demo_project.build(root)
    pane = Pane(root, {"PYTHONPATH": str(SRC), "TERM": "xterm-256color"})
    yield root, ids, pane
    pane.close()


def dyno(args: str) -> str:
    return f"{shlex.quote(sys.executable)} -m dynosaur.cli.main {args}"


def check_fits(rows: list[str], joined: list[str]) -> None:
    assert rows, "no output"
    assert max(len(line) for line in joined) <= WIDTH, "a line wrapped:\n" + "\n".join(joined)
    assert rows == joined  # the same thing: no row is the continuation of a wrapped line


def whole(text: str, rows: list[str]) -> bool:
    return any(text in row for row in rows)


CAPTURED: dict[str, list[str]] = {}


@pytest.mark.parametrize("command", ["status", "tasks", "releases", "diff v1 v2"])
def test_tables_fit_80_columns_with_ids_whole(project, command):
    root, ids, pane = project
    rows, joined = pane.run(dyno(command))
    CAPTURED[command] = rows
    check_fits(rows, joined)
    sources = [*ids, demo_project.GATED]
    tasks = [t for found in ids.values() for t in found]
    if command == "status":
        assert all(whole(s, rows) for s in sources), rows
        assert len(rows) <= 2 * len(sources) + 8  # two lines a source, the header, total, reasons
        assert whole("hub:stanfordnlp/imdb@", rows)  # the origin, with a short revision
    elif command == "tasks":
        assert all(whole(t, rows) for t in tasks) and all(whole(s, rows) for s in ids)
        assert len(rows) <= 4 * len(tasks) + len(ids) + 4
    elif command == "releases":
        assert whole("v1 ", rows) and whole("v2 ", rows) and whole("cc-by-sa-4.0", rows)
        assert len(rows) <= 14
    else:
        assert whole("(none) → mit", rows) and not whole("None", rows)
        assert whole(demo_project.NEW_IN_V2, rows) and whole("vader-amazon-reviews", rows)
        assert len(rows) <= 14
    # Shown to the humans reviewing this (pytest -s): what the pane looked like.
    print(f"\n$ dyno {command}\n" + "\n".join(rows))


def test_a_wide_terminal_shows_full_detail(project):
    root, ids, pane = project
    _, rows = pane.run(f"COLUMNS=200 {dyno('status')} | cat")  # piped: COLUMNS sets the width
    assert whole("hub:stanfordnlp/imdb", rows) and whole(
        demo_project.revision("vader-amazon-reviews")[7:19], rows
    )
    assert max(len(r) for r in rows) > WIDTH  # one line per source, origin and revision in columns


PROGRESS = (
    "import time; from dynosaur.core.runner import progress; "
    "[time.sleep(0.25) for _ in progress(range(12), 'collect')]"
)


def test_progress_is_a_rich_bar_on_a_terminal(project):
    root, ids, pane = project
    rows, _ = pane.run(f"{shlex.quote(sys.executable)} -c {shlex.quote(PROGRESS)}")
    (bar,) = [r for r in rows if r.strip()]  # one line, redrawn in place, left at its final state
    assert bar.startswith("collect") and "━" in bar and "12/12 sources" in bar, bar
    assert "sources/s" in bar and bar.rstrip().endswith("done")  # the ETA, once there is none left


def test_progress_piped_is_plain_periodic_lines(project):
    root, ids, pane = project
    command = f"DYNO_PROGRESS_EVERY_S=1 {shlex.quote(sys.executable)} -c {shlex.quote(PROGRESS)} 2>&1 | cat"
    rows, _ = pane.run(command)
    assert not any("━" in r or "\x1b" in r for r in rows)
    assert 2 <= len(rows) <= 5, rows  # ~3 s of work: a line a second at most, and the last
    assert all(r.startswith("collect: ") and "sources/s" in r for r in rows)
    assert rows[-1].startswith("collect: 12/12 sources (100%)") and rows[-1].endswith("done")
    assert all("ETA" in r for r in rows[:-1])
