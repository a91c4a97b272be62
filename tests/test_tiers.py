"""`pytest --fast` (tests/tiers.py): the tier every commit runs leaves out the slow, integration and heavy tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tiers import HEAVY_S, heavy_tests

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str) -> set[str]:
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_fast_leaves_out_slow_integration_and_recorded_heavy_tests():
    files = [
        "tests/pipeline/test_local_model.py",
        "tests/pipeline/test_batch_kills.py",
        "tests/test_tiers.py",
    ]
    every, fast = collected(*files), collected("--fast", *files)
    slow = "tests/pipeline/test_local_model.py::test_local_server_returns_schema_valid_json"
    heavy = [t for t in every if heavy_tests().get(t, 0) >= HEAVY_S]
    assert slow in every and slow not in fast
    assert heavy and not set(heavy) & fast  # the kill tests are recorded as heavy
    assert "tests/pipeline/test_local_model.py::test_server_needs_xllamacpp" in fast


def test_the_record_names_only_tests_that_exist():
    """A renamed heavy test would silently join the fast tier; its stale entry is caught here."""
    files = sorted({node.split("::")[0] for node in heavy_tests()})
    every = collected(*files)
    stale = [node for node in heavy_tests() if node not in every]
    assert not stale, (
        f"tests/durations.json names tests that are gone (rerun --record-durations): {stale[:5]}"
    )
