"""The suite on several pytest-xdist workers (`-n auto` in pyproject's addopts): what keeps that safe.

- A test marked `alone` (a CPU hog, a wall-clock assertion) runs with no other test alongside: every test holds
  a shared lock for its whole protocol (setup, call, teardown, so module fixtures built or torn down on its
  behalf count too), and an `alone` test holds it exclusively. A turnstile lock in front keeps the exclusive
  waiter from being starved by the other workers' stream of shared holders.
- Tests that share a module- or session-scoped fixture land on one worker, so the fixture is built once, not
  once per worker (`--dist loadgroup`; an explicit `xdist_group` marker groups tests too).

Without xdist (`-p no:xdist`, `-n 0`) both are no-ops.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ALONE = "alone"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALONE}: runs with no other test alongside on any xdist worker (CPU hogs, wall-clock checks)",
    )


def shared_fixture_group(item: pytest.Item) -> str | None:
    """The group of a test that uses a fixture wider than a function (one worker builds it once), or that
    names one with `xdist_group`."""
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    groups = []
    for name in info.names_closure:
        for fixturedef in info.name2fixturedefs.get(name, ()):
            if fixturedef.scope == "session" and fixturedef.baseid.startswith("tests"):
                groups.append(f"session:{fixturedef.baseid}::{name}")
            elif fixturedef.scope in ("package", "module", "class"):
                groups.append(f"{fixturedef.scope}:{item.nodeid.split('::')[0]}")
    return min(groups) if groups else None  # "module:" < "session:": a module's tests stay together


def _shared_dir(config: pytest.Config) -> Path | None:
    """The run's base temp folder, which every worker shares (each gets `<basetemp>/popen-gwN` of it)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and config.option.basetemp:
        return Path(config.option.basetemp).parent
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: tell the controller's scheduler (below) which tests go together."""
    folder = _shared_dir(config)
    if folder is None:
        return
    groups = {item.nodeid: group for item in items if (group := shared_fixture_group(item))}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".groups.")
    with os.fdopen(fd, "w") as fh:
        json.dump(groups, fh)
    os.replace(tmp, folder / f"groups-{os.environ['PYTEST_XDIST_WORKER']}.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, with the groups the workers wrote: xdist's own loadgroup reads the group from a
    suffix it adds to the node id, which pytest 9.2's read-only node ids drop."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    folder = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # the workers' parent

    class SharedFixtureScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # read once every worker has collected (and written its file)
                self.groups = {}
                for path in sorted(folder.glob("groups-*.json")):
                    self.groups |= json.loads(path.read_text())
            return self.groups.get(nodeid, nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    folder = _shared_dir(item.config)
    if folder is None:
        yield
        return
    alone = item.get_closest_marker(ALONE) is not None
    with open(folder / "turnstile", "a") as turnstile, open(folder / "tests", "a") as tests:
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # an `alone` test waiting here keeps newcomers out
        try:
            fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
