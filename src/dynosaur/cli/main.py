"""`dyno`: a thin click layer over the registry's functions.

Each command parses its options, calls one function that returns a pydantic model (or a list of them) and
renders it: `--json` prints `model_dump(mode="json")` to stdout and nothing else; otherwise a rich table.
Progress, hints and errors go to stderr. A `DynoError` prints as one `Error: ...` line with its exit code
(2 for usage and params errors); `DYNO_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import click

# Each command module registers its commands on `cli` when imported: one module per command group.
from dynosaur.cli import (  # noqa: F401
    audit_commands,
    corpus_commands,
    pipeline_commands,
    release_commands,
    source_commands,
    training_commands,
)
from dynosaur.cli.app import cli
from dynosaur.core.errors import DynoError, error_line

__all__ = ["cli", "console", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line for a DynoError, a traceback for anything else (a bug)."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
        from dynosaur.core.errors import INTERRUPTED

        click.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except DynoError as exc:
        if os.environ.get("DYNO_DEBUG"):
            raise
        click.echo(error_line(exc), err=True)
        sys.exit(exc.exit_code)


def console() -> None:
    """The `dyno` program: `main`, then leave without tearing the interpreter down. Every command has written
    its outputs (atomically) and printed its lines when it returns; unloading DVC, pyarrow and pydantic would
    cost about 0.4 s more of every command (a third of the gap between `dyno pull` and `dvc get`)."""
    code: int = 0
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
