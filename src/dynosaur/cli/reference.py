"""The CLI reference in `docs/cli.md`: `dyno --help` and each command's `--help`, generated, never hand-edited.

The generated text sits between two markers in the file; everything outside them is left as it is.

    python -m dynosaur.cli.reference            # print the reference
    python -m dynosaur.cli.reference --check    # exit 1 with one line if docs/cli.md is stale (tests run this)
    python -m dynosaur.cli.reference --write    # rewrite the section between the markers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from click.testing import CliRunner

from dynosaur.cli.main import cli
from dynosaur.core.io import atomic_write

BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"
DEFAULT_PATH = Path("docs/cli.md")
WIDTH = 100


def reference() -> str:
    """`dyno --help`, then each command's `--help` in name order (a group's own commands after it), one
    fenced block each."""
    import click

    runner = CliRunner()
    parts = []
    names: list[list[str]] = [[]]
    for name in sorted(cli.commands):
        names.append([name])
        command = cli.commands[name]
        if isinstance(command, click.Group):
            names += [[name, sub] for sub in sorted(command.commands)]
    for args in names:
        result = runner.invoke(cli, [*args, "--help"], terminal_width=WIDTH, prog_name="dyno")
        parts.append(f"```\n$ dyno {' '.join([*args, '--help'])}\n{result.output.rstrip()}\n```")
    return "\n".join(parts)


def section(text: str) -> str | None:
    """The text between the markers, stripped; None when the markers are missing or out of order."""
    _, begin, rest = text.partition(BEGIN)
    body, end, _ = rest.partition(END)
    return body.strip() if begin and end else None


def is_current(text: str) -> bool:
    return section(text) == reference()


def rewrite(text: str) -> str:
    """`text` with the section between the markers replaced by today's reference."""
    if section(text) is None:
        raise ValueError(f"no {BEGIN} ... {END} markers")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{reference()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dynosaur.cli.reference", description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file's reference is stale")
    mode.add_argument("--write", action="store_true", help="rewrite the file's reference")
    ap.add_argument("--file", type=Path, default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    args = ap.parse_args(argv)
    if not (args.check or args.write):
        print(reference())
        return 0
    text = args.file.read_text(encoding="utf-8") if args.file.is_file() else ""
    if args.check:
        if is_current(text):
            print("up to date")
            return 0
        print(f"{args.file}: the CLI reference is stale: run `python -m dynosaur.cli.reference --write`")
        return 1
    try:
        new = rewrite(text)
    except ValueError as exc:
        print(f"Error: {args.file}: {exc}", file=sys.stderr)
        return 1
    if new != text:
        mode = args.file.stat().st_mode
        atomic_write(args.file, new)
        args.file.chmod(mode)  # atomic_write's temp file is 0600; a doc keeps its mode
    print(f"{args.file}: {'rewritten' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
