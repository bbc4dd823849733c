"""SVG markers (arrowheads) written out as ordinary shapes, because svglib ignores ``marker-start/-end``.

Diagrams from a model draw arrows as a line or path with ``marker-end="url(#arrow)"``; without markers a
cycle diagram loses every arrowhead. :func:`expand` finds each element that names a ``<marker>`` and inserts,
right after it, a ``<g>`` holding a copy of the marker's content, placed and turned as SVG says: at the first
or last vertex, rotated to the path's direction there (``orient="auto"``, ``auto-start-reverse`` or an angle),
scaled by the stroke width (``markerUnits="strokeWidth"``, the default) and by the marker's viewBox to
``markerWidth`` × ``markerHeight``, with ``refX``/``refY`` on the vertex. ``context-stroke`` and
``context-fill`` become the element's own stroke and fill. ``marker-mid`` is not drawn.

It runs on the parsed tree before :func:`eink_llm.render.svgsafe.sanitise` checks it, so every copy is checked
and counted like any other element; it does nothing on a tree with more elements than the checks allow, looks
no further up than they allow deep, caps the copies at :data:`MAX_COPIED` elements, and anything odd about one
marker (a bad number, an unknown path command) only leaves that arrowhead out.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from eink_llm.errors import DrawingRefused
from eink_llm.render.svgsafe import MAX_DEPTH, MAX_ELEMENTS, SVG_NS, local

MAX_COPIED = 5_000
MAX_PATH_CHARS = 50_000

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PATH_TOKEN = re.compile(r"([MmLlHhVvCcSsQqTtAaZz])|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_URL_ID = re.compile(r"url\(\s*['\"]?#([^)'\"]+)['\"]?\s*\)")
_ARGS = {"m": 2, "l": 2, "h": 1, "v": 1, "c": 6, "s": 4, "q": 4, "t": 2, "a": 7, "z": 0}

Point = tuple[float, float]


def _style(element: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in str(element.get("style") or "").split(";"):
        if ":" in part:
            key, value = part.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def _prop(element: Any, name: str, *, inherit: bool = True) -> str | None:
    """A presentation property from the element's style or attribute, else (if inherited) its ancestors'."""
    node, levels = element, 0
    while node is not None and levels <= MAX_DEPTH:  # deeper trees are refused by the checks that follow
        levels += 1
        value = _style(node).get(name) or node.get(name)
        if value and value.strip() != "inherit":
            return str(value).strip()
        if not inherit:
            return None
        node = node.getparent()
    return None


def _floats(text: str | None) -> list[float]:
    return [float(n) for n in _NUMBER.findall(text or "")]


def _points(element: Any) -> list[Point]:
    numbers = _floats(element.get("points"))
    return list(zip(numbers[0::2], numbers[1::2], strict=False))


def _angle(a: Point, b: Point) -> float | None:
    if a == b:
        return None
    return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))


def _path_ends(d: str) -> tuple[Point, float, Point, float] | None:
    """(first vertex, direction leaving it, last vertex, direction arriving) of path data, degrees."""
    tokens = _PATH_TOKEN.findall(d)
    current: Point = (0.0, 0.0)
    start: Point = current
    segments: list[tuple[Point, Point, Point, Point]] = []  # (from, tangent-out point, tangent-in point, to)
    command = ""
    i = 0
    previous_control: Point | None = None
    while i < len(tokens):
        letter, _ = tokens[i]
        if letter:
            command = letter
            i += 1
            if command in "Zz":
                if current != start:
                    segments.append((current, start, current, start))
                current = start
                continue
        if not command:
            return None
        count = _ARGS[command.lower()]
        args = [float(tokens[i + k][1]) for k in range(count) if i + k < len(tokens) and tokens[i + k][1]]
        if len(args) < count:
            return None
        i += count
        rel = command.islower()
        ox, oy = current if rel else (0.0, 0.0)
        kind = command.lower()
        if kind == "m":
            current = start = (args[0] + ox, args[1] + oy)
            command = "l" if rel else "L"  # further pairs are lines
            previous_control = None
            continue
        if kind in ("l", "t"):
            end = (args[0] + ox, args[1] + oy)
            segments.append((current, end, current, end))
            previous_control = None
        elif kind == "h":
            end = (args[0] + ox, current[1])
            segments.append((current, end, current, end))
        elif kind == "v":
            end = (current[0], args[0] + oy)
            segments.append((current, end, current, end))
        elif kind == "c":
            c1, c2, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy), (args[4] + ox, args[5] + oy)
            segments.append((current, c1 if c1 != current else c2, c2 if c2 != end else c1, end))
            previous_control = c2
        elif kind == "s":
            c1 = current
            if previous_control is not None:
                c1 = (2 * current[0] - previous_control[0], 2 * current[1] - previous_control[1])
            c2, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy)
            segments.append((current, c1 if c1 != current else c2, c2 if c2 != end else c1, end))
            previous_control = c2
        elif kind == "q":
            c, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy)
            segments.append((current, c, c, end))
            previous_control = None
        elif kind == "a":
            end = (args[5] + ox, args[6] + oy)
            out_point, in_point = _arc_tangents(current, end, args[0], args[1], args[2], args[3], args[4])
            segments.append((current, out_point, in_point, end))
            previous_control = None
        current = segments[-1][3] if segments else current
    if not segments:
        return None
    first, last = segments[0], segments[-1]
    leave = _angle(first[0], first[1])
    arrive = _angle(last[2], last[3])
    if leave is None or arrive is None:
        return None
    return first[0], leave, last[3], arrive


def _arc_tangents(
    p0: Point, p1: Point, rx: float, ry: float, phi: float, large: float, sweep: float
) -> tuple[Point, Point]:
    """Points giving the directions at the start and end of an elliptical arc (SVG spec, appendix F.6.5)."""
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0 or p0 == p1:
        return p1, p0
    cos_p, sin_p = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    dx, dy = (p0[0] - p1[0]) / 2, (p0[1] - p1[1]) / 2
    x1, y1 = cos_p * dx + sin_p * dy, -sin_p * dx + cos_p * dy
    scale = x1 * x1 / (rx * rx) + y1 * y1 / (ry * ry)
    if scale > 1:
        rx, ry = rx * math.sqrt(scale), ry * math.sqrt(scale)
    num = rx * rx * ry * ry - rx * rx * y1 * y1 - ry * ry * x1 * x1
    den = rx * rx * y1 * y1 + ry * ry * x1 * x1
    factor = math.sqrt(max(0.0, num / den)) if den else 0.0
    if bool(large) == bool(sweep):
        factor = -factor
    cx1, cy1 = factor * rx * y1 / ry, -factor * ry * x1 / rx
    cx = cos_p * cx1 - sin_p * cy1 + (p0[0] + p1[0]) / 2
    cy = sin_p * cx1 + cos_p * cy1 + (p0[1] + p1[1]) / 2
    sign = 1.0 if sweep else -1.0

    def tangent(p: Point) -> Point:  # direction of travel at p: perpendicular to the radius (for a circle)
        vx, vy = (p[0] - cx) / rx, (p[1] - cy) / ry
        return -sign * vy * rx, sign * vx * ry

    t0, t1 = tangent(p0), tangent(p1)
    return (p0[0] + t0[0], p0[1] + t0[1]), (p1[0] - t1[0], p1[1] - t1[1])


def _ends(element: Any) -> tuple[Point, float, Point, float] | None:
    name = local(element.tag)
    if name == "line":
        a = (float(element.get("x1") or 0), float(element.get("y1") or 0))
        b = (float(element.get("x2") or 0), float(element.get("y2") or 0))
        angle = _angle(a, b)
        return None if angle is None else (a, angle, b, angle)
    if name in ("polyline", "polygon"):
        points = _points(element)
        if name == "polygon" and points:
            points.append(points[0])
        if len(points) < 2:
            return None
        leave, arrive = _angle(points[0], points[1]), _angle(points[-2], points[-1])
        return None if leave is None or arrive is None else (points[0], leave, points[-1], arrive)
    if name == "path":
        d = str(element.get("d") or "")
        return _path_ends(d) if len(d) <= MAX_PATH_CHARS else None
    return None


def _placed(marker: Any, element: Any, at: Point, direction: float, start: bool) -> Any:
    """A ``<g>`` with a copy of the marker's content, placed at ``at`` (None if the marker is unusable)."""
    orient = str(marker.get("orient") or "0").strip()
    if orient == "auto":
        angle = direction
    elif orient == "auto-start-reverse":
        angle = direction + (180.0 if start else 0.0)
    else:
        numbers = _floats(orient)
        angle = numbers[0] if numbers else 0.0
    units = 1.0
    if str(marker.get("markerUnits") or "strokeWidth") != "userSpaceOnUse":
        widths = _floats(_prop(element, "stroke-width") or "1")
        units = widths[0] if widths else 1.0
    width = (_floats(marker.get("markerWidth")) or [3.0])[0]
    height = (_floats(marker.get("markerHeight")) or [3.0])[0]
    box = _floats(marker.get("viewBox"))
    fit = 1.0
    if len(box) == 4 and box[2] > 0 and box[3] > 0:
        fit = min(width / box[2], height / box[3])
    ref_x, ref_y = (_floats(marker.get("refX")) or [0.0])[0], (_floats(marker.get("refY")) or [0.0])[0]
    placing = (at[0], at[1], angle, units, fit, ref_x, ref_y)
    if not all(math.isfinite(n) and abs(n) <= 1e6 for n in placing):
        return None
    group = marker.makeelement(f"{{{SVG_NS}}}g" if marker.tag.startswith("{") else "g", {})
    group.set(
        "transform",
        f"translate({at[0]:.4f} {at[1]:.4f}) rotate({angle:.4f}) scale({units * fit:.6f}) "
        f"translate({-ref_x:.4f} {-ref_y:.4f})",
    )
    stroke = _prop(element, "stroke") or "none"
    fill = _prop(element, "fill") or "black"
    # the marker's content inherits from the marker's own ancestors, not from the element it sits on
    group.set("fill", _prop(marker, "fill") or "black")
    group.set("stroke", _prop(marker, "stroke") or "none")
    group.set("stroke-width", _prop(marker, "stroke-width") or "1")
    for child in marker:
        if isinstance(child.tag, str):
            group.append(copy.deepcopy(child))
    for node in group.iter():
        for key, value in list(node.attrib.items()):
            if "context-stroke" in value or "context-fill" in value:
                node.set(key, value.replace("context-stroke", stroke).replace("context-fill", fill))
    return group


def expand(root: Any) -> None:
    """Insert a placed copy of each referenced marker after the element that references it (see module doc)."""
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    if len(elements) > MAX_ELEMENTS:
        return  # refused by the checks that follow; not worth any work here
    markers = {el.get("id"): el for el in elements if local(el.tag) == "marker"}
    if not markers:
        return
    copied = 0
    for element in elements:
        if not isinstance(element.tag, str) or local(element.tag) not in ("line", "polyline", "polygon", "path"):
            continue
        wanted: list[tuple[str, str]] = []
        for which in ("start", "end"):
            value = _prop(element, f"marker-{which}")
            if value and value != "none":
                wanted.append((which, value))
        if not wanted:
            continue
        try:
            ends = _ends(element)
        except (ValueError, IndexError, OverflowError, ZeroDivisionError):
            ends = None
        if ends is None:
            continue
        parent = element.getparent()
        for which, value in wanted:
            match = _URL_ID.search(value)
            marker = markers.get(match.group(1)) if match else None
            if marker is None or parent is None:
                continue
            at, direction = (ends[0], ends[1]) if which == "start" else (ends[2], ends[3])
            try:
                group = _placed(marker, element, at, direction, which == "start")
            except (ValueError, IndexError, OverflowError, ZeroDivisionError):
                group = None
            if group is None:
                continue
            copied += sum(1 for _ in group.iter())
            if copied > MAX_COPIED:
                raise DrawingRefused(f"the drawing's markers expand to too many elements (more than {MAX_COPIED:,})")
            element.addnext(group)
