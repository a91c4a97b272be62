"""`dynosaur.core.errors`: every error type lives here, carries its ids, and shows as one line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dynosaur.core import errors
from dynosaur.core.errors import (
    DynoError,
    LLMError,
    NotFound,
    ParamsError,
    SourceError,
    error_line,
    first_line,
)

PACKAGE = Path(errors.__file__).resolve().parents[1]
ERROR_NAMES = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)}


def test_first_line_skips_blank_lines_and_falls_back_to_the_type():
    assert first_line(ValueError("\n  boom  \nmore detail")) == "boom"
    assert first_line(KeyError()) == "KeyError"


def test_error_line_is_one_line_with_the_debug_hint():
    line = error_line(LLMError("HTTP 500 after 3 retries\nsecond line"))
    assert "\n" not in line and line.startswith("Error: HTTP 500 after 3 retries") and "DYNO_DEBUG=1" in line


@pytest.mark.parametrize(
    "exc", [NotFound("unknown version 'v9'"), ParamsError("params.yaml: x: unknown key")]
)
def test_usage_and_lookup_errors_show_no_debug_hint(exc):
    assert error_line(exc) == f"Error: {exc}"


def test_errors_carry_the_ids_a_user_needs():
    exc = SourceError("alpha", "cannot load")
    assert exc.source_id == "alpha" and "alpha" in str(exc)
    assert NotFound("x", task_id="abc").task_id == "abc"
    assert DynoError("x", repo_id="o/n").repo_id == "o/n"
    assert ParamsError("bad").exit_code == 2 and NotFound("x").exit_code == 1


def test_no_error_class_is_defined_outside_errors_py():
    """One place for errors: a DynoError subclass anywhere else in the package is a stray."""
    stray = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" or "testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & ERROR_NAMES:
                    stray.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not stray, stray


@pytest.mark.parametrize("name", ["LedgerError", "SchemaError", "PublishConflict", "StageFailed"])
def test_registry_errors_are_dyno_errors(name: str):
    assert issubclass(getattr(errors, name), DynoError)


def test_every_error_dynosaur_raises_has_a_kind():
    """Issue 23 §8: callers and tests match on a subclass, never on message text, so no code outside
    core/errors.py makes a bare DynoError."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "dynosaur"
    bare = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "DynoError":
                bare.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not bare, f"bare DynoError(...) at {bare}: raise one of core/errors.py's kinds"


def test_usage_mistakes_exit_2_and_state_problems_carry_no_traceback_hint():
    from dynosaur.core import errors

    assert errors.UsageError("x").exit_code == 2 and errors.PipelineFileError("x").exit_code == 2
    assert not errors.NotReady("x").debug_hint and not errors.DvcBusy("x").debug_hint
    assert issubclass(errors.DamagedCopy, errors.PullError) and issubclass(errors.DvcBusy, errors.GitError)
