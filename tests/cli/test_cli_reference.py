"""The README's CLI reference is `dyno --help` and each command's `--help`, made by scripts/cli_reference.py.

Fix a failure with `python scripts/cli_reference.py` and paste its output between the README's markers.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

from dynosaur.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cli_reference.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = load_script()


def stale(readme: Path) -> bool:
    """True when the README's section between the markers is not what the script generates."""
    text = readme.read_text(encoding="utf-8")
    assert ref.BEGIN in text and ref.END in text, f"{readme.name} lacks the {ref.BEGIN} / {ref.END} markers"
    return ref.readme_section(text) != ref.reference()


def test_readme_cli_reference_is_current():
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing"
    assert not stale(readme), "README CLI reference is stale: run `python scripts/cli_reference.py`"


# --- self-tests of the check, on a README written in tmp_path ------------------------------------------


def write_readme(path: Path, section: str) -> Path:
    text = f"# Dynosaur\n\nIntro.\n\n## CLI\n\n{ref.BEGIN}\n{section}\n{ref.END}\n\n## Licence\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_reference_covers_the_group_and_every_command():
    text = ref.reference()
    assert text.startswith("```\n$ dyno --help\nUsage: dyno [OPTIONS] COMMAND [ARGS]...")
    for name in cli.commands:
        assert f"$ dyno {name} --help\nUsage: dyno {name} [OPTIONS]" in text
    assert text.count("```") == 2 * (len(cli.commands) + 1)
    assert ref.reference() == text  # deterministic


def test_check_accepts_a_current_readme_and_rejects_a_stale_one(tmp_path):
    assert not stale(write_readme(tmp_path / "README.md", ref.reference()))
    edited = ref.reference().replace("Show a task and a sample of its instances.", "Show a task.")
    assert edited != ref.reference()
    assert stale(write_readme(tmp_path / "README.md", edited))
    assert stale(write_readme(tmp_path / "README.md", ""))


@pytest.mark.parametrize("current, code, message", [(True, 0, "up to date"), (False, 1, "stale")])
def test_script_check_exit_code(tmp_path, monkeypatch, capsys, current, code, message):
    readme = write_readme(tmp_path / "README.md", ref.reference() if current else "old text")
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--check", str(readme)])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exc.value.code == code
    assert message in capsys.readouterr().out
