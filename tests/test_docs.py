"""The README stays a short entry point, its links and the docs' links resolve, and CI runs its test command."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """Markdown without fenced blocks and code spans: what a renderer turns into links and headings."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def broken_links(path: Path) -> list[str]:
    """Every relative link in `path` whose file (or heading anchor, in a markdown file) does not exist."""
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{path.name}: {target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; move reference material to docs/"
    )


def test_every_relative_link_in_readme_and_docs_resolves():
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert docs, "docs/ has no markdown files"
    broken = [b for path in [README, *docs] for b in broken_links(path)]
    assert not broken, "\n".join(broken)


def test_readme_links_each_doc():
    linked = {t.partition("#")[0] for t in LINK.findall(prose(README.read_text(encoding="utf-8")))}
    for doc in ("pipeline", "releases", "hub", "training", "performance", "cli", "quality", "layout"):
        assert f"docs/{doc}.md" in linked


def test_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Two words: here\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n[ok](other.md) [ok](other.md#two-words-here) [ok](#doc) [web](https://example.com/x.md)\n"
        "`[code span](nope.md)`\n\n```\n[in a fence](nope.md)\n```\n\n"
        "[gone](missing.md) [bad anchor](other.md#three) [bad local](#nowhere)\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == [
        "doc.md: missing.md (no such file)",
        "doc.md: other.md#three (no such heading)",
        "doc.md: #nowhere (no such heading)",
    ]


def readme_test_command() -> str:
    commands = [
        line.strip() for line in README.read_text(encoding="utf-8").splitlines() if "-m pytest" in line
    ]
    assert len(commands) == 1, f"README.md should name one test command, found {commands}"
    return commands[0]


def test_ci_runs_the_readme_test_command_last():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == readme_test_command()


def test_continual_table_script_targets_docs_training():
    spec = importlib.util.spec_from_file_location("continual_table", ROOT / "scripts" / "continual_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.TARGET == ROOT / "docs" / "training.md"
    assert "| strategy | unseen |" in module.TARGET.read_text(encoding="utf-8")


def test_the_hardening_case_count_in_the_docs_is_the_suites():
    """docs/pipeline.md names how many cases tests/test_bad_input.py has: counted by pytest, not by hand."""
    import subprocess
    import sys

    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_bad_input.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    count = sum(1 for line in collected.stdout.splitlines() if line.startswith("tests/test_bad_input.py::"))
    assert count > 50, collected.stdout + collected.stderr
    said = re.search(
        r"`tests/test_bad_input.py` checks case by case \((\d+) cases",
        (ROOT / "docs/pipeline.md").read_text(),
    )
    assert said is not None and int(said.group(1)) == count


def test_params_yaml_documents_the_discover_section():
    """`dyno discover` reads `params.yaml: discover`: the section is there, every key of it with a comment."""
    import yaml

    from dynosaur.core.params import DiscoverParams

    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    section = yaml.safe_load(text).get("discover")
    assert section is not None and set(section) == set(DiscoverParams.model_fields)
    block = text[text.index("\ndiscover:") :].split("\n\n", 1)[0].splitlines()[1:]
    keys = [line for line in block if re.match(r"^  \w+:", line)]
    assert len(keys) == len(DiscoverParams.model_fields) and all("#" in line for line in keys), keys
