"""How `dyno` prints: `--json` to stdout, rich tables and text with data escaped, hints and errors on stderr."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

import click
from pydantic import BaseModel

from dynosaur.cli.tables import Col, fit, render
from dynosaur.core.text import printable

ERR = None  # the stderr console, created on first use
# What json.dumps leaves raw that a terminal acts on: DEL, C1 controls, bidi marks and overrides.
JSON_UNSAFE = re.compile("[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _stderr():
    global ERR
    if ERR is None:
        from rich.console import Console

        ERR = Console(stderr=True)
    return ERR


def _stdout():
    from rich.console import Console

    return Console()


def emit_json(obj: BaseModel | Sequence[BaseModel] | dict) -> None:
    if isinstance(obj, BaseModel):
        data: Any = obj.model_dump(mode="json")
    elif isinstance(obj, dict):
        data = obj
    else:
        data = [o.model_dump(mode="json") for o in obj]
    # json escapes C0 controls itself; C1 controls and bidi overrides it leaves raw: escape them too (still
    # the same JSON), so `--json` on a terminal is as safe as the tables.
    text = json.dumps(data, indent=1, ensure_ascii=False)
    click.echo(JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], justify_right: Collection[str] = frozenset()
):
    from rich.table import Table

    # Cells hold data (LLM-written instructions, dataset text): escaped, so `[...]` is not rich markup and
    # control characters are shown, not sent to the terminal.
    t = Table(title=None if title is None else escape(title), title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left", overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else escape(str(v)) for v in r])
    return t


def plain_text(text: str):
    """Data as a rich renderable: printed as it is (no markup), control characters escaped."""
    from rich.text import Text

    return Text(printable(text))


def short(revision: str) -> str:
    return revision.removeprefix("sha256:")[:12]


def escape(text: str) -> str:
    """Data for a rich console: markup escaped, control characters shown as escapes (`\\x1b`), never raw."""
    from rich.markup import escape as rich_escape

    return rich_escape(printable(text))


def print_grouped(out, cols: list[Col], rows: list[list[Any]], *, flat: bool = True) -> None:
    """Rows whose second column is a source id: one table when it fits (or `flat`), else one table per
    source with its id as the title, lined up: a source column would leave the text too little room."""
    if flat and not fit(cols, rows, out.width - 1).hidden:
        return out.print(render(None, cols, rows, out.width), crop=False)
    cols = cols[:1] + cols[2:]
    narrow = [r[:1] + r[2:] for r in rows]
    for n, sid in enumerate(dict.fromkeys(r[1] for r in rows)):
        group = [short for short, r in zip(narrow, rows, strict=True) if r[1] == sid]
        out.print(render(sid, cols, group, out.width, fit_to=narrow, show_header=n == 0), crop=False)
