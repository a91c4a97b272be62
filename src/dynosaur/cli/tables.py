"""Tables that fit the terminal: ids whole on one line, long text wrapped in its own column, the rest cut.

`fit` sizes the columns for a width (the terminal's, `COLUMNS`, or 80 when piped): every column at its natural
width when that fits; otherwise `wrap` columns wrap and `cut` columns are abbreviated down to their minimums,
and when even the minimums don't fit, the columns with the highest `drop` go (a caption names them). `id`,
`number` and `fixed` columns never shrink, so an id is never wrapped or cut. Full values come with `--json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dynosaur.core.text import printable

Kind = Literal["id", "number", "fixed", "wrap", "cut"]
GAP = 2  # between columns: one space of padding and the box's blank vertical
# rich's SIMPLE_HEAD (a rule under the header, no verticals) with a rule at a section's end too (totals).
_BOX = "    \n    \n ── \n    \n ── \n    \n    \n    \n"


def middle_ellipsis(text: str, width: int) -> str:
    """`text` in at most `width` cells: its start and (longer) end around a `…`."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 3
    tail = width - 1 - head
    return set_cell_size(text, head) + "…" + _last_cells(text, tail)


def _last_cells(text: str, width: int) -> str:
    from rich.cells import cell_len

    out = ""
    for ch in reversed(text):
        if cell_len(ch + out) > width:
            break
        out = ch + out
    return out


def short_origin(origin: str, width: int) -> str:
    """`hub:owner/name` or `local:path` in `width` cells: the kind kept, the middle of the rest elided (the end
    names the dataset, so it is kept longest)."""
    kind, sep, rest = origin.partition(":")
    if not sep or len(kind) + 2 > width:
        return middle_ellipsis(origin, width)
    return f"{kind}:{middle_ellipsis(rest, width - len(kind) - 1)}"


def source_detail(origin: str, revision: str, licence: str | None, width: int) -> str:
    """`origin@revision · licence` in `width` cells: a 7-character revision; the origin, then the licence,
    shortened to fit."""
    rev = "@" + revision.removeprefix("sha256:")[:7]
    # The licence whole while the origin keeps 12 cells; past that both give way.
    tail = f" · {middle_ellipsis(licence, max(6, width - len(rev) - 3 - 12))}" if licence else ""
    return f"{short_origin(origin, max(8, width - len(rev) - len(tail)))}{rev}{tail}"


def truncate(text: str, width: int) -> str:
    """The first `width` characters, no ellipsis: for hashes and timestamps, whose start says enough."""
    return text[:width]


def licence_change(
    before: str | None, after: str | None, *, in_before: bool = True, in_after: bool = True
) -> str:
    """A diff's licence cell: the licence when unchanged, or of a source only one side has (`in_before`,
    `in_after`); else `before → after`, a missing licence shown as `(none)`, never `None`."""
    if not in_before or before == after:
        return after or ""
    if not in_after:
        return before or ""
    return f"{before or '(none)'} → {after or '(none)'}"


def licence_shares(instances: dict[str, int], shown: int = 3) -> str:
    """A release's licences by share of its instances, largest first, one a line: `mit 62%`; past `shown`,
    `+N more`."""
    total = sum(instances.values()) or 1
    ranked = sorted(instances.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"{name} {count / total:.0%}" for name, count in ranked[:shown]]
    if len(ranked) > shown:
        lines.append(f"+{len(ranked) - shown} more")
    return "\n".join(lines)


@dataclass(frozen=True)
class Col:
    header: str
    kind: Kind = "fixed"
    min_width: int = 8  # wrap and cut columns: the narrowest they get
    drop: int = 0  # > 0: may be hidden when even the minimums don't fit; the highest goes first
    cut: Callable[[str, int], str] = middle_ellipsis  # cut columns: how a value is shortened


@dataclass
class Fitted:
    columns: list[int]  # indices of the columns shown
    widths: list[int]  # their widths
    hidden: list[str]  # headers of the columns left out


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def _plain(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [["" if v is None else printable(str(v)) for v in r] for r in rows]


def fit(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int) -> Fitted:
    """Column widths for `rows` in `width` cells."""
    rows = _plain(rows)
    natural = [max([_cells(c.header), *(_cells(r[i]) for r in rows)]) for i, c in enumerate(cols)]
    least = [
        min(natural[i], max(c.min_width, _cells(c.header))) if c.kind in ("wrap", "cut") else natural[i]
        for i, c in enumerate(cols)
    ]
    shown = list(range(len(cols)))

    def need(indices: list[int], widths: list[int]) -> int:
        return sum(widths[i] for i in indices) + GAP * (len(indices) - 1)

    while need(shown, least) > width:
        droppable = [i for i in shown if cols[i].drop > 0]
        if not droppable:
            break  # ids wider than the terminal: the terminal wraps them; nothing left to take away
        shown.remove(max(droppable, key=lambda i: (cols[i].drop, i)))
    hidden = [cols[i].header for i in range(len(cols)) if i not in shown]
    if need(shown, natural) <= width:
        return Fitted(shown, [natural[i] for i in shown], hidden)
    # Give what is left over the minimums to the shrinkable columns, the most modest wish first: a licence
    # gets all it needs before an instruction, which wraps anyway, gets the rest.
    spare = max(0, width - need(shown, least))
    widths = {i: least[i] for i in shown}
    for want, i in sorted((natural[i] - least[i], i) for i in shown if natural[i] > least[i]):
        extra = min(want, spare)
        widths[i] += extra
        spare -= extra
    return Fitted(shown, [widths[i] for i in shown], hidden)


def render(
    title: str | None,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Any]],
    width: int,
    *,
    footer: Sequence[Sequence[Any]] = (),
    fit_to: Sequence[Sequence[Any]] | None = None,
    show_header: bool = True,
) -> Any:
    """A rich table of `rows` (and `footer` rows, after a rule: totals) fitted to `width`. Cells are data:
    shown as text (never rich markup), control characters escaped. `fit_to`: size the columns for these rows
    instead (several tables, one per group, that line up)."""
    from rich.box import Box
    from rich.table import Table
    from rich.text import Text

    body, foot = _plain(rows), _plain(footer)
    # the last column's right padding takes a cell
    fitted = fit(cols, body + foot if fit_to is None else fit_to, width - 1)
    table = Table(
        title=None if title is None else Text(printable(title)),
        title_justify="left",
        box=Box(_BOX),
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        caption=Text(f"not shown at this width: {', '.join(fitted.hidden)} (see --json)")
        if fitted.hidden
        else None,
        caption_justify="left",
        show_header=show_header,
    )
    for i, w in zip(fitted.columns, fitted.widths, strict=True):
        c = cols[i]
        table.add_column(
            c.header,
            justify="right" if c.kind == "number" else "left",
            width=w,
            no_wrap=c.kind != "wrap",
            overflow="fold" if c.kind == "wrap" else "ellipsis",
        )
    for n, r in enumerate(body + foot):
        cells = [
            Text(
                "\n".join(cols[i].cut(line, w) for line in r[i].split("\n"))
                if cols[i].kind == "cut"
                else r[i]
            )
            for i, w in zip(fitted.columns, fitted.widths, strict=True)
        ]
        table.add_row(*cells, end_section=bool(foot) and n == len(body) - 1)
    needed = sum(fitted.widths) + GAP * (len(fitted.widths) - 1) + 1
    return _AtLeast(table, needed) if needed > width else table


class _AtLeast:
    """A table whose ids are wider than the terminal: rendered at its own width (the terminal wraps the
    lines) rather than squeezed by rich, which would cut or wrap the ids."""

    def __init__(self, table: Any, width: int):
        self.table, self.width = table, width

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield from console.render(self.table, options.update(width=self.width))
