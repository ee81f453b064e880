"""Geometry of the pages' small charts, drawn as inline SVG by the templates (`macros.html`).

No plotting library runs in the browser: these functions turn numbers into rectangles,
polylines, points and axis ticks in a fixed viewBox, with a title on every mark so a
reader can hover for the exact value.
"""

import math
from dataclasses import dataclass, field
from typing import Any

# Plot area inside the viewBox: room on the left for y labels, below for x labels.
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 30


@dataclass
class Tick:
    at: float  # position along the axis, in viewBox units
    label: str


@dataclass
class Chart:
    width: int
    height: int
    x_label: str
    y_label: str
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)  # {name, colour, points}
    points: list[dict[str, Any]] = field(default_factory=list)  # {x, y, colour, title, href}

    @property
    def plot(self) -> dict[str, float]:
        return {
            "left": LEFT,
            "top": TOP,
            "right": self.width - RIGHT,
            "bottom": self.height - BOTTOM,
        }

    @property
    def empty(self) -> bool:
        return not (self.bars or self.lines or self.points)


PALETTE = ["#ea580c", "#2563eb", "#15803d", "#9333ea", "#b91c1c", "#0891b2", "#a16207"]


def _short(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _scale(lo: float, hi: float, a: float, b: float, log: bool = False):
    """Maps [lo, hi] onto [a, b] (log10 axis when `log`)."""
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0

    def to(value: float) -> float:
        v = math.log10(value) if log else value
        return round(a + (v - lo) / span * (b - a), 2)

    return to


def histogram(
    heights: list[float],
    values: list[float],
    *,
    x_label: str,
    y_label: str = "count",
    width: int = 320,
    height: int = 130,
) -> Chart:
    """Bars of a histogram whose bars sit at `values` (bin centres), with both axes."""
    chart = Chart(width, height, x_label, y_label)
    if not heights:
        return chart
    plot = chart.plot
    top = max(heights) or 1
    step = (plot["right"] - plot["left"]) / len(heights)
    to_y = _scale(0, top, plot["bottom"], plot["top"])
    for i, h in enumerate(heights):
        where = f"{values[i]:.4g}" if i < len(values) else f"bin {i}"
        chart.bars.append(
            {
                "x": round(plot["left"] + i * step, 2),
                "w": round(max(step - 1, 1), 2),
                "y": to_y(h),
                "h": round(plot["bottom"] - to_y(h), 2),
                "title": f"{where}: {h:,.0f}",
            }
        )
    if values:
        ends = (0, len(heights) // 2, len(heights) - 1)
        chart.x_ticks = [
            Tick(round(plot["left"] + (i + 0.5) * step, 2), _short(values[i]))
            for i in ends
            if i < len(values)
        ]
    chart.y_ticks = [Tick(plot["bottom"], "0"), Tick(plot["top"], f"{top:,.0f}")]
    return chart


def bar_chart(
    labels: list[str],
    values: list[float],
    titles: list[str],
    *,
    x_label: str,
    y_label: str,
    width: int = 360,
    height: int = 130,
) -> Chart:
    """One labelled bar per value (e.g. absorption per first letter)."""
    chart = histogram(values, [], x_label=x_label, y_label=y_label, width=width, height=height)
    for bar, title in zip(chart.bars, titles, strict=True):
        bar["title"] = title
    chart.x_ticks = [
        Tick(round(b["x"] + b["w"] / 2, 2), label)
        for b, label in zip(chart.bars, labels, strict=True)
    ]
    if values:
        chart.y_ticks[-1].label = f"{max(values):.2g}"
    return chart


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    spec: str,
    width: int = 360,
    height: int = 190,
) -> Chart:
    """One line per series (e.g. a source set) of (x, y) points (e.g. layer, metric)."""
    chart = Chart(width, height, x_label, y_label)
    points = [p for ps in series.values() for p in ps if math.isfinite(p[1])]
    if not points:
        return chart
    plot = chart.plot
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if y_lo == y_hi:
        y_lo, y_hi = y_lo - 0.5 * (abs(y_lo) or 1), y_hi + 0.5 * (abs(y_hi) or 1)
    to_x = _scale(x_lo - 0.5, x_hi + 0.5, plot["left"], plot["right"])
    to_y = _scale(y_lo, y_hi, plot["bottom"], plot["top"])
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        shown = [(x, y) for x, y in sorted(values) if math.isfinite(y)]
        chart.lines.append(
            {
                "name": name,
                "colour": colour,
                "path": " ".join(f"{to_x(x)},{to_y(y)}" for x, y in shown),
                "points": [
                    {"cx": to_x(x), "cy": to_y(y), "title": f"{name} · {x:g}: {format(y, spec)}"}
                    for x, y in shown
                ],
            }
        )
    chart.x_ticks = [Tick(to_x(x), f"{x:g}") for x in sorted(set(xs))][:16]
    chart.y_ticks = [Tick(to_y(v), format(v, spec)) for v in (y_lo, (y_lo + y_hi) / 2, y_hi)]
    return chart


def scatter(
    points: list[dict[str, Any]],
    *,
    x_label: str,
    y_label: str,
    x_spec: str,
    y_spec: str,
    log_x: bool = False,
    width: int = 360,
    height: int = 220,
) -> Chart:
    """Points {x, y, group, title, href}: one colour per group (SAE-Bench's scatter)."""
    chart = Chart(width, height, x_label, y_label)
    shown = [
        p
        for p in points
        if math.isfinite(p["x"]) and math.isfinite(p["y"]) and (p["x"] > 0 or not log_x)
    ]
    if not shown:
        return chart
    plot = chart.plot
    xs, ys = [p["x"] for p in shown], [p["y"] for p in shown]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if x_lo == x_hi:
        x_lo, x_hi = (x_lo / 2, x_hi * 2) if log_x else (x_lo - 1, x_hi + 1)
    if y_lo == y_hi:
        y_lo, y_hi = y_lo - 0.5 * (abs(y_lo) or 1), y_hi + 0.5 * (abs(y_hi) or 1)
    pad_x = 8
    to_x = _scale(x_lo, x_hi, plot["left"] + pad_x, plot["right"] - pad_x, log_x)
    to_y = _scale(y_lo, y_hi, plot["bottom"] - pad_x, plot["top"] + pad_x)
    groups = sorted({p["group"] for p in shown})
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    chart.points = [
        {
            "cx": to_x(p["x"]),
            "cy": to_y(p["y"]),
            "colour": colours[p["group"]],
            "title": f"{p['title']}: {format(p['x'], x_spec)}, {format(p['y'], y_spec)}",
            "href": p.get("href"),
        }
        for p in shown
    ]
    chart.lines = [{"name": g, "colour": colours[g], "path": "", "points": []} for g in groups]
    chart.x_ticks = [Tick(to_x(v), format(v, x_spec)) for v in (x_lo, x_hi)]
    chart.y_ticks = [Tick(to_y(v), format(v, y_spec)) for v in (y_lo, y_hi)]
    return chart
