"""What every stage's `main()` shares: argument parsing, the one-line error exit, progress and metrics.

Errors: a `DynoError` ends the stage with `Error: <message>` on stderr and its exit code (2 for params);
`DYNO_DEBUG=1` shows the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from dynosaur.core.errors import INTERRUPTED, DynoError, EmptyInput, error_line
from dynosaur.core.io import write_json
from dynosaur.core.progress import Progress
from dynosaur.core.records import SourceMeta
from dynosaur.core.segments import RecordFolder
from dynosaur.core.text import printable

T = TypeVar("T")


def run(main: Callable[[argparse.Namespace], None], *paths: str, flags: tuple[str, ...] = ()) -> None:
    """Parse `--<path>` options named by `paths` (dvc.yaml passes every path in) and run `main`."""
    parser = argparse.ArgumentParser()
    for name in paths:
        parser.add_argument(f"--{name}", required=True, type=Path)
    for name in flags:
        parser.add_argument(f"--{name}", action="store_true")
    args = parser.parse_args()
    try:
        main(args)
    except DynoError as exc:
        if os.environ.get("DYNO_DEBUG"):
            raise
        print(error_line(exc), file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


def log(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)


def progress(
    items: Iterable[T], description: str, total: int | None = None, unit: str = "sources"
) -> Iterator[T]:
    """Each item, counted by a `Progress` (a rich bar on a terminal; plain lines every few seconds otherwise)."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total  # type: ignore[arg-type]
    with Progress(description, total, unit) as bar:
        for item in items:
            yield item
            bar.advance()


def write_metrics(path: Path, metrics: dict) -> None:
    write_json(path, metrics)


def prune(records: RecordFolder[Any], keep: set[str], *, collected: Path | None = None) -> list[str]:
    """Remove the records of sources that are gone; return the removed ids. Never all of them on an empty
    `keep`, unless `collected` records say every source is gone (`refuse_to_remove_all`)."""
    doomed = [sid for sid in records.ids() if sid not in keep]
    if not keep:
        refuse_to_remove_all(records.folder, len(doomed), collected)
    records.remove(doomed)
    return doomed


def refuse_to_remove_all(out_dir: Path, doomed: int, collected: Path | None = None) -> None:
    """Raise `EmptyInput` rather than remove all `doomed` outputs of a stage whose inputs list no source.

    An empty source list is what an empty, truncated or unreadable `params.yaml` looks like, or a deleted
    input folder; run directly, a stage would then delete every output it owns (issue 11). It may only when
    collect's records (`collected`, for the stages after it) exist and say no source is left to process:
    every one skipped (retracted, licence) or failed.
    """
    if not doomed:
        return
    if collected is not None:
        records = [meta for _, meta in RecordFolder(collected, SourceMeta).items()]
        if records and all(meta.status != "ok" for meta in records):
            return
    raise EmptyInput(
        f"no source to keep: refusing to remove all {doomed} output(s) in {out_dir} (is params.yaml empty, or"
        f" an input folder gone?); if every source is really gone, delete {out_dir} by hand"
    )
