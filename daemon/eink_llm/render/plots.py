"""```plot blocks: function plots and data series, drawn with reportlab's canvas (no matplotlib needed).

The format is YAML (so JSON works too); every key is optional except that there must be something to draw::

    title: Damped oscillation
    x: [0, 10]                 # the domain of the functions (default [-10, 10], or the data's range)
    y: [-1.2, 1.2]             # the visible range (default: fitted to the curves and points)
    xlabel: t (s)
    ylabel: displacement (cm)
    grid: true                 # light grid lines at the ticks (default true)
    aspect: 0.6                # height / width of the plot, 0.3 to 1.5 (default 0.62)
    functions:                 # functions of x (grammar in render/plotexpr.py; never eval-ed)
      - exp(-x/4) * cos(2x)
      - {f: exp(-x/4), label: envelope}
    series:                    # data points, [x, y] pairs; line: true joins them
      - {label: measured, points: [[0, 1], [1, -0.3], [2, -0.6]], line: false}

Curves are told apart without colour: solid, dashed, dotted, dash-dot… in black; point series by marker shape.
A legend lists every labelled curve. Limits: :data:`MAX_SOURCE` characters, :data:`MAX_FUNCTIONS` functions,
:data:`MAX_SERIES` series, :data:`MAX_POINTS` points in all; YAML anchors and aliases are refused. Anything
wrong raises :class:`~eink_llm.errors.DrawingRefused` with a one-line reason, and the block is shown as source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from eink_llm.errors import DrawingRefused
from eink_llm.render import fonts
from eink_llm.render.document import draw_line
from eink_llm.render.plotexpr import Fn, compile_function
from eink_llm.render.styles import Theme

MAX_SOURCE = 20_000
MAX_FUNCTIONS = 8
MAX_SERIES = 8
MAX_POINTS = 5_000
MAX_YAML_EVENTS = 20_000
SAMPLES = 600
KEYS = frozenset({"title", "x", "y", "xlabel", "ylabel", "grid", "aspect", "functions", "series"})
#: Dash patterns for curves, in turn (None: solid).
DASHES: tuple[tuple[float, ...] | None, ...] = (None, (6, 3), (1.2, 2.4), (7, 2.5, 1.5, 2.5), (12, 4), (3, 2))
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "plus")


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    line: bool = True
    marker: str | None = None
    dash: tuple[float, ...] | None = None


@dataclass
class Plot:
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    grid: bool = True
    aspect: float = 0.62
    x_range: tuple[float, float] = (-10.0, 10.0)
    y_range: tuple[float, float] = (-1.0, 1.0)
    curves: list[Curve] = field(default_factory=list)


def _load(source: str) -> dict[str, Any]:
    if len(source) > MAX_SOURCE:
        raise DrawingRefused(f"the plot is too long ({len(source):,} characters; at most {MAX_SOURCE:,})")
    try:
        for n, event in enumerate(yaml.parse(source, Loader=yaml.SafeLoader)):
            if n > MAX_YAML_EVENTS:
                raise DrawingRefused("the plot has too many entries")
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise DrawingRefused("the plot uses YAML anchors or aliases, which are not allowed")
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise DrawingRefused(f"the plot is not valid YAML ({' '.join(str(exc).split())[:100]})") from None
    if not isinstance(data, dict):
        raise DrawingRefused("the plot is not a list of keys (title:, functions:, …)")
    return data


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DrawingRefused(f"the plot's {what} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise DrawingRefused(f"the plot's {what} is not a number ({str(value)[:20]!r})") from None
    if not math.isfinite(number) or abs(number) > 1e12:
        raise DrawingRefused(f"the plot's {what} is not a usable number")
    return number


def _range(value: object, what: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DrawingRefused(f"the plot's {what} is not a pair [from, to]")
    low, high = _number(value[0], what), _number(value[1], what)
    if not low < high:
        raise DrawingRefused(f"the plot's {what} is empty ({low:g} to {high:g})")
    return low, high


def _text(value: object) -> str:
    return " ".join(fonts.clean_text("" if value is None else str(value)).split())[:120]


def _functions(data: dict[str, Any]) -> list[tuple[Fn, str]]:
    items = data.get("functions", [])
    if isinstance(items, str | dict):
        items = [items]
    if not isinstance(items, list):
        raise DrawingRefused("the plot's functions are not a list")
    if len(items) > MAX_FUNCTIONS:
        raise DrawingRefused(f"the plot has too many functions (at most {MAX_FUNCTIONS})")
    out: list[tuple[Fn, str]] = []
    for item in items:
        text, label = (item.get("f", item.get("y")), item.get("label")) if isinstance(item, dict) else (item, None)
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise DrawingRefused("a function of the plot is not written as text, e.g. sin(x)")
        out.append((compile_function(str(text)), _text(label if label is not None else text)))
    return out


def _series(data: dict[str, Any]) -> list[Curve]:
    items = data.get("series", [])
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or len(items) > MAX_SERIES:
        raise DrawingRefused(f"the plot's series are not a list of at most {MAX_SERIES}")
    curves: list[Curve] = []
    total = 0
    for n, item in enumerate(items):
        points = item.get("points") if isinstance(item, dict) else item
        if not isinstance(points, list):
            raise DrawingRefused("a series of the plot has no list of points [[x, y], …]")
        total += len(points)
        if total > MAX_POINTS:
            raise DrawingRefused(f"the plot has too many points (at most {MAX_POINTS:,})")
        xs, ys = [], []
        for point in points:
            if not isinstance(point, list | tuple) or len(point) != 2:
                raise DrawingRefused("a point of the plot is not a pair [x, y]")
            xs.append(_number(point[0], "point"))
            ys.append(_number(point[1], "point"))
        label = _text(item.get("label")) if isinstance(item, dict) else ""
        line = bool(item.get("line", False)) if isinstance(item, dict) else False
        curves.append(Curve(label, xs, ys, line=line, marker=MARKERS[n % len(MARKERS)]))
    return curves


def _fit(values: list[float]) -> tuple[float, float]:
    """A y range showing the curves, ignoring the spikes near poles (tan x, 1/x)."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return -1.0, 1.0
    low, high = finite[0], finite[-1]
    trim = len(finite) // 50
    if trim:
        t_low, t_high = finite[trim], finite[-1 - trim]
        if (high - low) > 10 * max(t_high - t_low, 1e-12):
            low, high = t_low - 0.25 * (t_high - t_low), t_high + 0.25 * (t_high - t_low)
    if high - low < 1e-9 * max(1.0, abs(high)):
        low, high = low - 1, high + 1
    pad = (high - low) * 0.06
    return low - pad, high + pad


def parse_plot(source: str) -> Plot:
    """The block as a :class:`Plot`; :class:`DrawingRefused` with a one-line reason when it is not one."""
    data = _load(source)
    plot = Plot(title=_text(data.get("title")), xlabel=_text(data.get("xlabel")), ylabel=_text(data.get("ylabel")))
    plot.grid = bool(data.get("grid", True))
    if "aspect" in data:
        plot.aspect = min(1.5, max(0.3, _number(data["aspect"], "aspect")))
    functions = _functions(data)
    series = _series(data)
    if not functions and not series:
        raise DrawingRefused("the plot has no functions and no series to draw")
    if "x" in data:
        plot.x_range = _range(data["x"], "x range")
    elif series and not functions:
        xs = [x for curve in series for x in curve.xs]
        plot.x_range = (min(xs), max(xs)) if max(xs) > min(xs) else (min(xs) - 1, max(xs) + 1)
    low, high = plot.x_range
    xs = [low + (high - low) * i / (SAMPLES - 1) for i in range(SAMPLES)]
    for n, (function, label) in enumerate(functions):
        curve = Curve(label, xs, [function(x) for x in xs], dash=DASHES[n % len(DASHES)])
        plot.curves.append(curve)
    plot.curves.extend(series)
    if "y" in data:
        plot.y_range = _range(data["y"], "y range")
    else:
        plot.y_range = _fit([y for curve in plot.curves for y in curve.ys])
    return plot


def ticks(low: float, high: float, target: int) -> list[float]:
    """Round tick values (1, 2, 5 × 10ⁿ apart) inside [low, high], about ``target`` of them."""
    raw = (high - low) / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    count = int((high - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(min(count, 50))]


def tick_text(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text.replace("-", "−")


class PlotPicture:
    """A parsed plot, laid out afresh for the box it gets (type stays at the theme's sizes)."""

    keep_aspect = False

    def __init__(self, plot: Plot, theme: Theme) -> None:
        self.plot = plot
        self.theme = theme
        self.width = 1.0
        self.height = plot.aspect

    def paint(self, canv: Any, width: float, height: float) -> None:
        p, t = self.plot, self.theme
        small = t.small_size
        label_size = round(t.font_size * 0.9, 2)
        y_ticks = ticks(*p.y_range, max(3, int(height / (small * 4))))
        x_ticks = ticks(*p.x_range, max(3, int(width / (small * 7))))
        left = max((fonts.text_width(tick_text(v), fonts.SANS, small) for v in y_ticks), default=0) + small * 0.8
        left += label_size * 1.4 if p.ylabel else 0
        bottom = small * 1.8 + (label_size * 1.4 if p.xlabel else 0)
        top = t.font_size * 1.6 if p.title else small * 0.8
        box = (left, bottom, width - small * 0.8, height - top)  # x0, y0, x1, y1 of the plotting area
        if box[2] - box[0] < 20 or box[3] - box[1] < 20:
            return
        (x0, y0, x1, y1), (xl, xh), (yl, yh) = box, p.x_range, p.y_range

        def to_page(x: float, y: float) -> tuple[float, float]:
            return x0 + (x - xl) / (xh - xl) * (x1 - x0), y0 + (y - yl) / (yh - yl) * (y1 - y0)

        canv.saveState()
        canv.setFillGray(0)
        self._axes(canv, box, to_page, x_ticks, y_ticks, small, label_size)
        area = canv.beginPath()
        area.rect(x0, y0, x1 - x0, y1 - y0)
        canv.clipPath(area, stroke=0, fill=0)
        for curve in p.curves:
            self._curve(canv, curve, to_page, (yh - yl))
        canv.restoreState()
        self._legend(canv, box, small)

    def _axes(self, canv: Any, box: tuple[float, ...], to_page: Any, xt: list[float], yt: list[float], small: float,
              label_size: float) -> None:  # fmt: skip
        p = self.plot
        x0, y0, x1, y1 = box
        canv.setLineWidth(0.35)
        canv.setStrokeGray(0.72)
        for value in xt if p.grid else ():
            canv.line(to_page(value, 0)[0], y0, to_page(value, 0)[0], y1)
        for value in yt if p.grid else ():
            canv.line(x0, to_page(0, value)[1], x1, to_page(0, value)[1])
        canv.setStrokeGray(0)
        canv.setLineWidth(0.9)
        if p.y_range[0] < 0 < p.y_range[1]:
            canv.line(x0, to_page(0, 0)[1], x1, to_page(0, 0)[1])
        if p.x_range[0] < 0 < p.x_range[1]:
            canv.line(to_page(0, 0)[0], y0, to_page(0, 0)[0], y1)
        canv.setLineWidth(0.6)
        canv.rect(x0, y0, x1 - x0, y1 - y0, stroke=1, fill=0)
        for value in xt:
            x = to_page(value, 0)[0]
            canv.line(x, y0, x, y0 - small * 0.35)
            text = tick_text(value)
            half = fonts.text_width(text, fonts.SANS, small) / 2
            draw_line(canv, x - half, y0 - small * 1.35, text, fonts.SANS, small)
        for value in yt:
            y = to_page(0, value)[1]
            canv.line(x0, y, x0 - small * 0.35, y)
            draw_line(canv, x0 - small * 0.5, y - small * 0.35, tick_text(value), fonts.SANS, small, right=True)
        if p.xlabel:
            width = fonts.text_width(p.xlabel, fonts.SANS, label_size)
            draw_line(canv, (x0 + x1 - width) / 2, small * 0.1 + label_size * 0.25, p.xlabel, fonts.SANS, label_size)
        if p.ylabel:
            canv.saveState()
            canv.translate(label_size * 1.0, (y0 + y1) / 2)
            canv.rotate(90)
            width = fonts.text_width(p.ylabel, fonts.SANS, label_size)
            draw_line(canv, -width / 2, 0, p.ylabel, fonts.SANS, label_size)
            canv.restoreState()
        if p.title:
            size = self.theme.font_size
            width = fonts.text_width(p.title, fonts.SANS_BOLD, size)
            draw_line(canv, (x0 + x1 - width) / 2, y1 + size * 0.55, p.title, fonts.SANS_BOLD, size)

    def _curve(self, canv: Any, curve: Curve, to_page: Any, span: float) -> None:
        low, high = self.plot.y_range
        canv.setStrokeGray(0)
        canv.setLineWidth(1.3)
        canv.setLineCap(1 if curve.dash and curve.dash[0] < 2 else 0)
        canv.setDash(list(curve.dash) if curve.dash else [])
        if curve.line or curve.marker is None:
            path, pen = canv.beginPath(), False
            previous: float | None = None
            for x, y in zip(curve.xs, curve.ys, strict=True):
                outside = not low - span <= y <= high + span
                was_out = previous is not None and not low <= previous <= high
                jump = previous is not None and abs(y - previous) > span and (outside or was_out)
                if not math.isfinite(y) or outside or jump:
                    pen = False
                    previous = y if math.isfinite(y) else None
                    continue
                if pen:
                    path.lineTo(*to_page(x, y))
                else:
                    path.moveTo(*to_page(x, y))
                    pen = True
                previous = y
            canv.drawPath(path, stroke=1, fill=0)
        canv.setDash([])
        if curve.marker is not None:
            canv.setLineWidth(0.8)
            for x, y in zip(curve.xs, curve.ys, strict=True):
                px, py = to_page(x, y)
                draw_marker(canv, curve.marker, px, py, self.theme.small_size * 0.38)

    def _legend(self, canv: Any, box: tuple[float, ...], small: float) -> None:
        labelled = [c for c in self.plot.curves if c.label]
        if len(labelled) < 2 and not any(c.marker for c in labelled):
            return
        sample = small * 2.6
        width = max(fonts.text_width(c.label, fonts.SANS, small) for c in labelled) + sample + small * 1.4
        row = small * 1.35
        x, top = box[2] - width - small * 0.4, box[3] - small * 0.4
        canv.saveState()
        canv.setFillGray(1)
        canv.setStrokeGray(0.4)
        canv.setLineWidth(0.5)
        height = row * len(labelled) + small * 0.4
        canv.rect(x, top - height, width, height, stroke=1, fill=1)
        canv.setFillGray(0)
        for n, curve in enumerate(labelled):
            y = top - row * (n + 0.75)
            canv.setStrokeGray(0)
            if curve.line or curve.marker is None:
                canv.setLineWidth(1.3)
                canv.setDash(list(curve.dash) if curve.dash else [])
                canv.line(x + small * 0.5, y + small * 0.3, x + small * 0.5 + sample, y + small * 0.3)
                canv.setDash([])
            if curve.marker is not None:
                canv.setLineWidth(0.8)
                draw_marker(canv, curve.marker, x + small * 0.5 + sample / 2, y + small * 0.3, small * 0.38)
            draw_line(canv, x + small * 0.9 + sample, y, curve.label, fonts.SANS, small)
        canv.restoreState()


def draw_marker(canv: Any, shape: str, x: float, y: float, r: float) -> None:
    """One data-point marker centred on (x, y), told apart by shape (filled or open), never by colour."""
    path = canv.beginPath()
    fill = shape in ("circle", "triangle")
    if shape == "circle":
        path.circle(x, y, r)
    elif shape == "square":
        path.rect(x - r, y - r, 2 * r, 2 * r)
    elif shape == "triangle":
        path.moveTo(x, y + r * 1.2)
        path.lineTo(x - r * 1.1, y - r * 0.8)
        path.lineTo(x + r * 1.1, y - r * 0.8)
        path.close()
    elif shape == "diamond":
        path.moveTo(x, y + r * 1.3)
        path.lineTo(x + r * 1.1, y)
        path.lineTo(x, y - r * 1.3)
        path.lineTo(x - r * 1.1, y)
        path.close()
    elif shape == "cross":
        path.moveTo(x - r, y - r)
        path.lineTo(x + r, y + r)
        path.moveTo(x - r, y + r)
        path.lineTo(x + r, y - r)
    else:
        path.moveTo(x - r * 1.2, y)
        path.lineTo(x + r * 1.2, y)
        path.moveTo(x, y - r * 1.2)
        path.lineTo(x, y + r * 1.2)
    canv.setFillGray(0)
    canv.drawPath(path, stroke=1, fill=1 if fill else 0)


def plot_picture(source: str, theme: Theme) -> PlotPicture:
    return PlotPicture(parse_plot(source), theme)
