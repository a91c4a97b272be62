"""The fast tier: `pytest --fast` runs every test but the slow ones, in well under 90 s on 2 cores.

Slow means marked `slow` (the real local model) or `integration` (real `dvc repro`), or recorded in
`tests/durations.json` as taking at least `HEAVY_S` on its last full run (training steps, subprocesses, kills).
Refresh the record after adding heavy tests: `pytest -m "not slow and not integration" --record-durations`.
A test the record does not know runs in the fast tier until the record is refreshed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
HEAVY_S = 0.2  # a test at least this long (setup + call + teardown) is left out of the fast tier
SLOW_MARKERS = ("slow", "integration")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynosaur tiers")
    group.addoption(
        "--fast", action="store_true", help="the fast tier: leave out slow, integration and heavy tests"
    )
    group.addoption(
        "--record-durations", action="store_true", help=f"write the tests of this run that took ≥ {HEAVY_S} s"
    )


def heavy_tests() -> dict[str, float]:
    return json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    heavy = heavy_tests()
    keep, drop = [], []
    for item in items:
        slow = any(item.get_closest_marker(m) for m in SLOW_MARKERS) or heavy.get(item.nodeid, 0) >= HEAVY_S
        (drop if slow else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[report.nodeid] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not session.config.getoption("--record-durations") or not _seconds:
        return
    record = {k: v for k, v in heavy_tests().items() if k not in _seconds}  # tests this run did not run
    record |= {k: round(v, 2) for k, v in _seconds.items() if v >= HEAVY_S}
    fd, tmp = tempfile.mkstemp(dir=DURATIONS.parent, prefix=".durations.")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
    os.replace(tmp, DURATIONS)
