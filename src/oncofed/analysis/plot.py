"""Kaplan-Meier curves as standalone SVG: one renderer for the CLI (`--plot km.svg`), the
SDK (`result.plot()`) and the portal's Analyse page. No JavaScript, no CDN, no fonts
fetched: text in the viewer's sans-serif."""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 20, 44


def km_svg(result: dict[str, Any], title: str = "") -> str:
    """The survival curves of a pooled KM result (steps, 95% band, at-risk in the legend)."""
    horizon = float(result.get("horizon_days") or 1)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + pw * min(t, horizon) / horizon

    def y(s: float) -> float:
        return TOP + ph * (1.0 - s)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(title or 'Kaplan-Meier survival')}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for i in range(6):  # y ticks 0 .. 1
        s = i / 5
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{LEFT + pw}" y1="{y(s):.1f}" y2="{y(s):.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 6}" y="{y(s) + 4:.1f}" text-anchor="end">'
            f"{s:.1f}</text>"
        )
    step = max(1, round(horizon / 365 / 6)) * 365 if horizon >= 730 else max(1.0, horizon / 6)
    t = 0.0
    while t <= horizon + 1e-9:
        label = f"{t / 365:g} y" if horizon >= 730 else f"{t:g} d"
        parts.append(
            f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{label}</text>'
        )
        t += step
    parts.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 6}" text-anchor="middle">time since diagnosis</text>'
    )
    for k, (level, curve) in enumerate(result.get("groups", {}).items()):
        colour = COLOURS[k % len(COLOURS)]
        path = [f"M{x(0):.1f},{y(1):.1f}"]
        band_hi, band_lo = [(0.0, 1.0)], [(0.0, 1.0)]
        last = 1.0
        for row in curve["table"]:
            end = float(row["end"])
            path.append(f"H{x(end):.1f}V{y(row['survival']):.1f}")
            band_hi += [(end, band_hi[-1][1]), (end, row["ci_high"])]
            band_lo += [(end, band_lo[-1][1]), (end, row["ci_low"])]
            last = row["survival"]
        end_t = float(curve["table"][-1]["end"]) if curve["table"] else 0.0
        path.append(f"H{x(end_t):.1f}")
        poly = band_hi + list(reversed(band_lo))
        points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in poly)
        parts.append(f'<polygon points="{points}" fill="{colour}" opacity="0.12"/>')
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = TOP + 14 + 18 * k
        label = "all" if result.get("group_by") is None else f"{result['group_by']} {level}"
        parts.append(
            f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 28}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{W - RIGHT + 32}" y="{ly}">'
            f"{escape(label)} (n={curve['n']}, S={last:.2f})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)
