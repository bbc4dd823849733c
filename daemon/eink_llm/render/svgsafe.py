"""The model's SVG as hostile input: parsed without entities or network, checked against limits, cleaned.

An ```svg block comes straight from the model, which can be steered by whatever it read. Before svglib sees
anything, :func:`sanitise` parses the text with lxml set to resolve no entities, load no DTD and touch no
network, and refuses (with a reason a reader can understand) anything that

* is too big: more than :data:`MAX_SOURCE_CHARS` characters, :data:`MAX_ELEMENTS` elements (counting what
  every ``<use>`` expands to), nesting deeper than :data:`MAX_DEPTH`, a path longer than :data:`MAX_PATH_CHARS`,
  more than :data:`MAX_TEXT_CHARS` characters of text or :data:`MAX_PER_LETTER_CHARS` placed letter by letter;
* has a DOCTYPE or entity declarations (an "entity bomb" is refused before it is parsed);
* refers outside itself: ``<image>``, ``<script>``, ``<foreignObject>``, a ``href`` that is not ``#id``, a CSS
  ``url(...)`` that is not ``url(#id)``, ``@import``;
* has numbers no drawing needs: not finite (``inf``, ``nan``), beyond :data:`MAX_NUMBER` in magnitude, a
  viewBox that is empty, or transforms that together scale by more than :data:`MAX_SCALE` (these would make
  the renderer, or a tablet's PDF viewer, do unbounded work).

Markers (arrowheads) are first written out as shapes (:mod:`eink_llm.render.svgmarkers`), so the copies are
checked like the rest. Elements svglib does not draw (filters, masks, animation…) are dropped; what remains is the tree
handed to svglib (see :mod:`eink_llm.render.drawings`), which is never given a file name, so it cannot resolve
a relative reference either. Everything here is linear in the size of the text.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Any

from eink_llm.errors import DrawingRefused

MAX_SOURCE_CHARS = 200_000
MAX_ELEMENTS = 5_000
MAX_DEPTH = 40
MAX_PATH_CHARS = 50_000
MAX_NUMBER = 1e6
MAX_SCALE = 1e4
#: Characters of text in all; and in text placed letter by letter (x/y/dx/dy/rotate lists), which svglib turns
#: into one shape per letter, all inside one element (where the time limit cannot interrupt it).
MAX_TEXT_CHARS = 5_000
MAX_PER_LETTER_CHARS = 400
_POSITIONS = ("x", "y", "dx", "dy", "rotate")

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

#: What svglib draws (and we allow); anything else in the SVG namespace is dropped.
DRAWN = frozenset(
    {
        "svg", "g", "defs", "title", "desc", "metadata", "path", "rect", "circle", "ellipse", "line", "polyline",
        "polygon", "text", "tspan", "use", "symbol", "switch", "a", "style", "clipPath", "linearGradient",
        "radialGradient", "stop",
    }
)  # fmt: skip
#: Elements that load or run something: their presence refuses the whole drawing.
FORBIDDEN = frozenset({"image", "script", "foreignObject", "iframe", "feImage", "video", "audio", "object"})
_NUMERIC_SKIP = frozenset({"id", "class", "font-family", "href", "lang", "space"})
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NOT_A_NUMBER = re.compile(r"\b(?:inf|infinity|nan)\b", re.IGNORECASE)
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]+\b")
_URL = re.compile(r"url\s*\(\s*['\"]?\s*([^)'\"]*)", re.IGNORECASE)
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_SCALING = re.compile(r"(matrix|scale)\s*\(([^)]*)\)", re.IGNORECASE)


def _etree() -> Any:
    return importlib.import_module("lxml.etree")


def local(tag: object) -> str:
    """An element's name without its namespace ("" for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def parse(source: str) -> Any:
    """The SVG text as an lxml element, parsed with entities, DTDs and network off; :class:`DrawingRefused` if not."""
    if len(source) > MAX_SOURCE_CHARS:
        raise DrawingRefused(f"the drawing is too large ({len(source):,} characters; at most {MAX_SOURCE_CHARS:,})")
    if _DECLARATION.search(source):
        raise DrawingRefused("the drawing declares a DOCTYPE or entities, which are not allowed")
    etree = _etree()
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )
    try:
        root = etree.fromstring(source.strip().encode("utf-8"), parser=parser)
    except Exception as exc:  # XMLSyntaxError, ValueError
        raise DrawingRefused(f"the drawing is not well-formed SVG ({str(exc)[:120]})") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise DrawingRefused("the drawing declares a DOCTYPE or entities, which are not allowed")
    if root.tag not in ("svg", f"{{{SVG_NS}}}svg"):
        raise DrawingRefused("the block does not hold an <svg> element")
    return root


def _check_reference(value: str, where: str) -> None:
    if not value.strip().startswith("#"):
        raise DrawingRefused(f"the drawing refers to something outside itself ({where}), which is not allowed")


def _check_urls(value: str, where: str) -> None:
    if "@import" in value.lower():
        raise DrawingRefused("the drawing's style imports something from outside, which is not allowed")
    for target in _URL.findall(value):
        _check_reference(target, where)


def _check_numbers(name: str, value: str) -> None:
    if name in _NUMERIC_SKIP or len(value) > MAX_PATH_CHARS:
        if len(value) > MAX_PATH_CHARS:
            raise DrawingRefused(f"an attribute of the drawing is too long ({len(value):,} characters)")
        return
    if _NOT_A_NUMBER.search(value):
        raise DrawingRefused(f"the drawing uses a number that is not finite (in {name})")
    for token in _NUMBER.findall(_HEX_COLOUR.sub("", value)):
        number = float(token)
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise DrawingRefused(f"the drawing uses a number too large to draw ({token[:20]} in {name})")


def _scale_of(transform: str) -> float:
    """How much a transform attribute can enlarge (the largest factor in its scale/matrix parts, at least 1)."""
    factor = 1.0
    for kind, args in _SCALING.findall(transform):
        numbers = [abs(float(n)) for n in _NUMBER.findall(args)]
        if kind.lower() == "matrix":
            numbers = numbers[:4]
        for number in numbers:
            factor *= max(1.0, number)
    return factor


def _check_viewbox(root: Any) -> None:
    box = root.get("viewBox")
    if box is None:
        return
    numbers = [float(n) for n in _NUMBER.findall(box)]
    if len(numbers) != 4 or numbers[2] <= 0 or numbers[3] <= 0:
        raise DrawingRefused(f"the drawing's viewBox is not four numbers with a positive size ({box[:60]!r})")
    if max(numbers[2], numbers[3]) / min(numbers[2], numbers[3]) > 100:
        raise DrawingRefused(f"the drawing's viewBox is too thin to show ({box[:60]!r})")


def _attributes(element: Any) -> None:
    """Refuse external references and oversized numbers; drop event handlers (nothing runs in a PDF anyway)."""
    for key in list(element.attrib):
        name = local(key)
        value = str(element.attrib[key])
        if name.lower().startswith("on"):
            del element.attrib[key]
            continue
        if name == "href" and local(element.tag) == "a":  # a link: nothing to fetch, and nowhere to follow it
            del element.attrib[key]
            continue
        if name == "href":
            _check_reference(value, f"href={value[:60]!r}")
        _check_urls(value, f"{name}={value[:60]!r}")
        if name == "d" and len(value) > MAX_PATH_CHARS:
            size = f"{len(value):,} characters; at most {MAX_PATH_CHARS:,}"
            raise DrawingRefused(f"a path of the drawing is too long ({size})")
        _check_numbers(name, value)


def _text_cost(text: Any, total: int, per_letter: int) -> tuple[int, int]:
    """Characters of a <text> element added to the running totals; :class:`DrawingRefused` past the limits."""
    chars = sum(len(part) for part in text.itertext())
    total += chars
    if total > MAX_TEXT_CHARS:
        raise DrawingRefused(f"the drawing has too much text (more than {MAX_TEXT_CHARS:,} characters)")
    for node in text.iter():
        if any(len(_NUMBER.findall(str(node.get(key) or ""))) > 1 for key in _POSITIONS):
            per_letter += chars
            if per_letter > MAX_PER_LETTER_CHARS:
                limit = MAX_PER_LETTER_CHARS
                raise DrawingRefused(f"the drawing places too many letters one by one (more than {limit})")
            break
    return total, per_letter


def _expanded_counts(root: Any) -> int:
    """Elements in the tree, counting each ``<use>`` as what it refers to; refuses reference cycles."""
    # lxml makes a new Python proxy for a node whose last proxy was freed, so id() is only stable while every
    # proxy is alive: keep them all for the duration.
    alive = [el for el in root.iter() if isinstance(el.tag, str)]
    by_id = {el.get("id"): el for el in alive if el.get("id")}
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(el: Any) -> int:
        key = id(el)
        if key in memo:
            return memo[key]
        if key in active:
            raise DrawingRefused("the drawing's <use> elements refer to each other in a loop")
        active.add(key)
        total = 1
        for child in el:
            if isinstance(child.tag, str):
                total += size(child)
                if total > MAX_ELEMENTS:
                    break
        if local(el.tag) == "use":
            ref = (el.get(f"{{{XLINK_NS}}}href") or el.get("href") or "").strip().removeprefix("#")
            target = by_id.get(ref)
            if target is not None:
                total += size(target)
        active.discard(key)
        memo[key] = total
        return total

    try:
        return size(root)
    except RecursionError:
        raise DrawingRefused("the drawing's <use> elements are chained too deeply") from None


def sanitise(source: str) -> Any:
    """The SVG parsed, checked and cleaned, ready for svglib; :class:`DrawingRefused` says why it cannot be drawn."""
    from eink_llm.render import svgmarkers  # it builds on this module

    root = parse(source)
    _check_viewbox(root)
    svgmarkers.expand(root)  # before the checks, so that every copy is checked and counted
    count = text_chars = letter_chars = 0
    # (element, depth, accumulated scale); an explicit stack, so nesting cannot exhaust Python's
    stack: list[tuple[Any, int, float]] = [(root, 1, 1.0)]
    dropped: list[Any] = []
    while stack:
        element, depth, scale = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise DrawingRefused(f"the drawing has too many elements (more than {MAX_ELEMENTS:,})")
        if depth > MAX_DEPTH:
            raise DrawingRefused(f"the drawing is nested too deeply (more than {MAX_DEPTH} levels)")
        name = local(element.tag)
        if name in FORBIDDEN:
            raise DrawingRefused(f"the drawing contains <{name}>, which could load or run something from outside")
        _attributes(element)
        if name == "style":
            _check_urls(element.text or "", "a style sheet")
        if name == "text":
            text_chars, letter_chars = _text_cost(element, text_chars, letter_chars)
        scale *= _scale_of(str(element.get("transform") or ""))
        if scale > MAX_SCALE:
            raise DrawingRefused("the drawing's transforms enlarge it too much to draw")
        if "}" in element.tag and not element.tag.startswith(f"{{{SVG_NS}}}"):
            dropped.append(element)  # another namespace (Inkscape's, sodipodi's…): nothing to draw
            continue
        if name not in DRAWN:
            dropped.append(element)
            continue
        stack.extend((child, depth + 1, scale) for child in element if isinstance(child.tag, str))
    for element in dropped:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    if _expanded_counts(root) > MAX_ELEMENTS:
        raise DrawingRefused(f"the drawing's <use> elements expand to too many elements (more than {MAX_ELEMENTS:,})")
    if not root.get("font-family"):
        root.set("font-family", "sans-serif")  # the answer's own font, not a PDF base font (see drawings.py)
    return root
