"""Print the README's CLI reference from `dyno --help` and each command's `--help`.

`python scripts/cli_reference.py` prints it; `--check README.md` exits 1 if the README's copy is stale
(tests/registry/test_cli_reference.py runs that check in CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from dynosaur.cli.main import cli

BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def reference() -> str:
    runner = CliRunner()
    parts = []
    for args in [[], *([name] for name in sorted(cli.commands))]:
        result = runner.invoke(cli, [*args, "--help"], terminal_width=100, prog_name="dyno")
        parts.append(f"```\n$ dyno {' '.join(args + ['--help'])}\n{result.output.rstrip()}\n```")
    return "\n".join(parts)


def readme_section(readme: str) -> str:
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        stale = readme_section(Path(sys.argv[2]).read_text()) != reference()
        print("README CLI reference is stale: run scripts/cli_reference.py" if stale else "up to date")
        sys.exit(int(stale))
    print(reference())
