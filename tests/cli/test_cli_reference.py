"""docs/cli.md's CLI reference is `dyno --help` and each command's `--help`, made by dynosaur.cli.reference.

Fix a failure with `python -m dynosaur.cli.reference --write` from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynosaur.cli import reference as ref
from dynosaur.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"


def stale(doc: Path) -> bool:
    """True when the section between the doc's markers is not what the module generates."""
    text = doc.read_text(encoding="utf-8")
    assert ref.BEGIN in text and ref.END in text, f"{doc.name} lacks the {ref.BEGIN} / {ref.END} markers"
    return not ref.is_current(text)


def test_docs_cli_reference_is_current():
    assert DOC.exists(), "docs/cli.md is missing"
    assert not stale(DOC), (
        "docs/cli.md's CLI reference is stale: run `python -m dynosaur.cli.reference --write`"
    )


def test_module_check_from_the_repository_root():
    """What a contributor runs: `python -m dynosaur.cli.reference --check`, on docs/cli.md by default."""
    done = subprocess.run(
        [sys.executable, "-m", "dynosaur.cli.reference", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, "up to date\n"), done.stdout + done.stderr


# --- self-tests of the check, on a doc written in tmp_path ----------------------------------------------

HEAD = "# CLI reference\n\nIntro, kept as it is.\n\n"
TAIL = "\n\n## After\n\nAlso kept.\n"


def write_doc(path: Path, section: str) -> Path:
    path.write_text(f"{HEAD}{ref.BEGIN}\n{section}\n{ref.END}{TAIL}", encoding="utf-8")
    return path


def run(*args: str) -> int:
    """`python -m dynosaur.cli.reference ARGS`, in process; returns the exit code."""
    return ref.main(list(args))


def test_reference_covers_the_group_and_every_command():
    text = ref.reference()
    assert text.startswith("```\n$ dyno --help\nUsage: dyno [OPTIONS] COMMAND [ARGS]...")
    for name in cli.commands:
        assert f"$ dyno {name} --help\nUsage: dyno {name} [OPTIONS]" in text
    subcommands = [(name, sub) for name, c in cli.commands.items() for sub in getattr(c, "commands", {})]
    for name, sub in subcommands:  # a group's own commands too (`dyno audit sample`)
        assert f"$ dyno {name} {sub} --help\nUsage: dyno {name} {sub} [OPTIONS]" in text
    assert ("audit", "review") in subcommands
    assert text.count("```") == 2 * (len(cli.commands) + len(subcommands) + 1)
    assert ref.reference() == text  # deterministic


def test_check_accepts_a_current_doc_and_rejects_a_stale_one(tmp_path):
    assert not stale(write_doc(tmp_path / "cli.md", ref.reference()))
    edited = ref.reference().replace("Show a task and a sample of its instances.", "Show a task.")
    assert edited != ref.reference()
    assert stale(write_doc(tmp_path / "cli.md", edited))
    assert stale(write_doc(tmp_path / "cli.md", ""))


def test_section_needs_both_markers_in_order():
    assert ref.section(f"{ref.BEGIN}\nx\n{ref.END}") == "x"
    assert ref.section(f"{ref.BEGIN}\nx\n") is None
    assert ref.section(f"x\n{ref.END}") is None
    assert ref.section(f"{ref.END}\nx\n{ref.BEGIN}") is None


@pytest.mark.parametrize("current, code, message", [(True, 0, "up to date"), (False, 1, "stale")])
def test_module_check_exit_code(tmp_path, capsys, current, code, message):
    doc = write_doc(tmp_path / "cli.md", ref.reference() if current else "old text")
    before = doc.read_bytes()
    assert run("--check", "--file", str(doc)) == code
    out = capsys.readouterr().out
    assert message in out
    assert len(out.strip().splitlines()) == 1
    assert doc.read_bytes() == before  # --check never writes


def test_check_of_a_missing_file_is_stale(tmp_path, capsys):
    assert run("--check", "--file", str(tmp_path / "nope.md")) == 1
    assert "stale" in capsys.readouterr().out


def test_write_replaces_only_the_section_between_the_markers(tmp_path, capsys):
    doc = write_doc(tmp_path / "cli.md", "old text")
    doc.chmod(0o644)
    assert run("--write", "--file", str(doc)) == 0
    assert doc.stat().st_mode & 0o777 == 0o644
    text = doc.read_text(encoding="utf-8")
    assert text == f"{HEAD}{ref.BEGIN}\n{ref.reference()}\n{ref.END}{TAIL}"
    assert run("--check", "--file", str(doc)) == 0
    assert run("--write", "--file", str(doc)) == 0  # idempotent
    assert doc.read_text(encoding="utf-8") == text


def test_write_refuses_a_file_without_markers(tmp_path, capsys):
    doc = tmp_path / "cli.md"
    doc.write_text("# CLI reference\n\nno markers\n", encoding="utf-8")
    assert run("--write", "--file", str(doc)) == 1
    assert doc.read_text(encoding="utf-8") == "# CLI reference\n\nno markers\n"
    assert "markers" in capsys.readouterr().err
