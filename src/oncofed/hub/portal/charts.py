"""Charts as inline SVG drawn on the server: no chart library, no network, no JavaScript.

A chart is for looking; the same numbers are always in a table next to it (screen readers
read the table, the SVG carries a title and a one-line description). Withheld counts
("fewer than 10") are drawn as a hatched bar up to the threshold and labelled "< 10", so a
chart never shows a number the node did not release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 175
VALUE_WIDTH = 70
WIDTH = 580


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: withheld
    below: int | None = None  # the threshold of a withheld count
    note: str = ""

    @property
    def shown(self) -> str:
        if self.value is None:
            return f"< {self.below}" if self.below else "n/a"
        return f"{self.value:,.0f}"

    @property
    def length(self) -> float:
        if self.value is not None:
            return float(self.value)
        return float(self.below or 0)


def _ident(title: str) -> str:
    return "chart-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())[:40]


def bar_chart(title: str, bars: Sequence[Bar], description: str = "") -> Markup:
    """A horizontal bar chart; empty input gives an empty-state note instead of an SVG."""
    if not bars:
        return Markup('<p class="muted">{}</p>').format(f"No data yet for {title.lower()}.")
    top = max((b.length for b in bars), default=0.0) or 1.0
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = len(bars) * (BAR_HEIGHT + GAP) + GAP
    ident = _ident(title)
    desc = description or ", ".join(f"{b.label}: {b.shown}" for b in bars)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
        '<defs><pattern id="withheld" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" class="hatch"/></pattern>'
        "</defs>",
    ]
    for i, b in enumerate(bars):
        y = GAP + i * (BAR_HEIGHT + GAP)
        length = max(1.0, plot * b.length / top) if b.length else 0.0
        fill = 'fill="url(#withheld)"' if b.value is None else 'class="bar"'
        label = b.label if len(b.label) <= 22 else b.label[:21] + "…"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT * 0.7:.1f}" text-anchor="end" '
            f'class="label">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f"{fill}><title>{escape(b.label)}: {escape(b.shown)}{escape(b.note)}</title></rect>"
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + BAR_HEIGHT * 0.7:.1f}" '
            f'class="value">{escape(b.shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def range_chart(title: str, ranges: Sequence[tuple[str, int, int]], lo: int, hi: int) -> Markup:
    """Age ranges per dataset on one axis (a node releases a coarsened min-max, not ages)."""
    if not ranges or hi <= lo:
        return Markup('<p class="muted">{}</p>').format(f"No data yet for {title.lower()}.")
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = len(ranges) * (BAR_HEIGHT + GAP) + GAP + 18
    ident = _ident(title)
    desc = ", ".join(f"{label}: {a} to {b}" for label, a, b in ranges)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d">',
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>',
    ]

    def x(v: int) -> float:
        return LABEL_WIDTH + plot * (v - lo) / (hi - lo)

    for i, (label, a, b) in enumerate(ranges):
        y = GAP + i * (BAR_HEIGHT + GAP)
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT * 0.7:.1f}" text-anchor="end" '
            f'class="label">{escape(short)}</text>'
            f'<rect x="{x(a):.1f}" y="{y}" width="{max(2.0, x(b) - x(a)):.1f}" '
            f'height="{BAR_HEIGHT}" class="bar"><title>{escape(label)}: {a}-{b}</title></rect>'
            f'<text x="{x(b) + 6:.1f}" y="{y + BAR_HEIGHT * 0.7:.1f}" class="value">'
            f"{a}-{b}</text>"
        )
    axis_y = height - 4
    for tick in range(lo, hi + 1, max(10, (hi - lo) // 5 // 10 * 10 or 10)):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y}" text-anchor="middle" class="axis">{tick}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
