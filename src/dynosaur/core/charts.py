"""Small SVG charts for `dvc plots show`: pure functions, numbers in, SVG text out.

DVC draws data plots (CSV/JSON) with Vega loaded from a CDN, so its HTML shows nothing offline; an image
plot is copied next to the page and shown as is. Hand-written SVG needs no plotting library, and its bytes
depend only on the numbers (no timestamps, no library version), so the files sit in git like the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

FONT = 'font-family="sans-serif" font-size="12"'
COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
ROW_H = 20  # one bar
LABEL_W = 190  # the category labels left of the bars
PANEL_W = 260  # one panel's bars
TITLE_H = 40


def _num(value: float) -> str:
    """A bar's value as shown: whole numbers with thousands separators, others with 3 decimals."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def _label(text: str, limit: int = 28) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" {FONT}>'
    )
    background = f'<rect width="{width}" height="{height}" fill="white"/>'
    heading = f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>'
    return "\n".join([head, background, heading, *body, "</svg>"]) + "\n"


def bar_chart(title: str, categories: Sequence[str], panels: Mapping[str, Sequence[float]]) -> str:
    """Horizontal bars, one row per category, one panel per measure (each on its own scale)."""
    rows = max(len(categories), 1)
    width = LABEL_W + PANEL_W * max(len(panels), 1) + 10
    height = TITLE_H + 24 + rows * ROW_H + 10
    body: list[str] = []
    top = TITLE_H + 24
    for i, name in enumerate(categories):
        y = top + i * ROW_H + 14
        body.append(f'<text x="{LABEL_W - 8}" y="{y}" text-anchor="end">{_label(name)}</text>')
    if not categories:
        body.append(f'<text x="10" y="{top + 14}" fill="#666">nothing to show yet</text>')
    for p, (measure, values) in enumerate(panels.items()):
        x0 = LABEL_W + p * PANEL_W
        bar_w = PANEL_W - 80  # room for the value right of the longest bar
        body.append(f'<text x="{x0}" y="{TITLE_H + 14}" font-weight="bold">{escape(measure)}</text>')
        body.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + rows * ROW_H}" stroke="#999"/>')
        biggest = max((float(v) for v in values), default=0.0) or 1.0
        for i, value in enumerate(values):
            length = round(bar_w * max(float(value), 0.0) / biggest, 1)
            y = top + i * ROW_H + 3
            body.append(
                f'<rect x="{x0}" y="{y}" width="{length}" height="{ROW_H - 6}"'
                f' fill="{COLORS[p % len(COLORS)]}"/>'
            )
            body.append(f'<text x="{x0 + length + 4}" y="{y + 11}">{_num(value)}</text>')
    return _svg(width, height, title, body)


def line_chart(
    title: str, x_label: str, xs: Sequence[float], series: Mapping[str, Sequence[float | None]]
) -> str:
    """Lines over a shared x axis (a None value leaves a gap), with a legend and the y range marked."""
    width, height = 640, 340
    left, right, top, bottom = 60, 20, TITLE_H + 10 + 18 * len(series), 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for vs in series.values() for v in vs if v is not None]
    body: list[str] = []
    if not xs or not values:
        body.append(f'<text x="10" y="{top + 14}" fill="#666">nothing to show yet</text>')
        return _svg(width, height, title, body)
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x_lo, x_hi = float(min(xs)), float(max(xs))
    x_span = (x_hi - x_lo) or 1.0

    def px(x: float) -> float:
        return round(left + plot_w * (float(x) - x_lo) / x_span, 1)

    def py(y: float) -> float:
        return round(top + plot_h * (hi - y) / (hi - lo), 1)

    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for y in (lo, (lo + hi) / 2, hi):
        body.append(f'<text x="{left - 6}" y="{py(y) + 4}" text-anchor="end">{_num(round(y, 3))}</text>')
    for x in (x_lo, x_hi):
        body.append(f'<text x="{px(x)}" y="{top + plot_h + 16}" text-anchor="middle">{_num(x)}</text>')
    body.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    for s, (name, ys) in enumerate(series.items()):
        color = COLORS[s % len(COLORS)]
        legend_y = TITLE_H + 4 + 18 * s
        body.append(f'<rect x="{left}" y="{legend_y}" width="14" height="4" fill="{color}"/>')
        body.append(f'<text x="{left + 20}" y="{legend_y + 6}">{escape(name)}</text>')
        segment: list[str] = []
        points: list[tuple[float | None, float | None]] = [*zip(xs, ys, strict=True), (None, None)]
        for x_value, y_value in points:
            if x_value is None or y_value is None:
                if len(segment) == 1:  # a lone point: a dot, not an invisible line
                    cx, cy = segment[0].split(",")
                    body.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
                elif segment:
                    body.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}"'
                        ' stroke-width="2"/>'
                    )
                segment = []
                continue
            segment.append(f"{px(x_value)},{py(y_value)}")
    return _svg(width, height, title, body)
