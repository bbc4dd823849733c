"""TeX formulas as vector outlines, via matplotlib's mathtext (an optional dependency, imported on first use).

mathtext lays a formula out and hands back glyph outlines and rules; they become one filled reportlab path,
cached per formula, drawn wherever the formula appears at any size. Nothing is rasterised, so formulas stay
sharp at every zoom level and cost a few hundred bytes each. mathtext's DejaVu Sans fontset matches the body.

mathtext knows most of what answers use (fractions, roots, sums, integrals, Greek, accents, ``\\left…\\right``,
``\\mathbb``, ``\\text``) but not environments or line breaks. :func:`normalise` rewrites the common ones it
lacks (``\\tfrac``, ``\\frac12``, ``\\displaystyle``, ``\\boxed``, ``aligned``/``align``/``gather`` split at
``\\\\``); whatever still fails to parse is shown as its TeX source in monospace by the caller. So is every
formula when matplotlib is not installed (``pip install 'eink-llm[math]'``).
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from dataclasses import dataclass
from typing import Any

import structlog
from reportlab.pdfgen.pathobject import PDFPathObject

log = structlog.get_logger("eink_llm.render")

#: Outlines are computed at this size (pt) and scaled when drawn; large enough that PDF's 2-decimal
#: coordinates lose nothing visible.
REF_SIZE = 100.0

_lock = threading.Lock()
_state: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Formula:
    """One laid-out formula, in units of the font size (multiply by the size in points to get points)."""

    tex: str
    width: float
    ascent: float  # above the baseline
    depth: float  # below the baseline (positive)
    path: PDFPathObject | None  # at REF_SIZE; None for an empty formula (e.g. only spacing)

    def draw(self, canv: Any, x: float, y: float, size: float) -> None:
        """Fill the formula with its baseline origin at (x, y), set at ``size`` points."""
        if self.path is None:
            return
        canv.saveState()
        canv.setFillGray(0)
        scale = size / REF_SIZE
        canv.transform(scale, 0, 0, scale, x, y)
        canv.drawPath(self.path, stroke=0, fill=1, fillMode=1)  # non-zero winding, as TrueType outlines need
        canv.restoreState()


def _parser() -> tuple[Any, Any, Any] | None:
    """(TextToPath, FontProperties, rc_context), or None when matplotlib is not installed. Call under _lock."""
    if "parser" not in _state:
        try:  # imported by name so that type checking does not need the optional extra installed
            rc_context = importlib.import_module("matplotlib").rc_context
            FontProperties = importlib.import_module("matplotlib.font_manager").FontProperties
            TextToPath = importlib.import_module("matplotlib.textpath").TextToPath
        except Exception as exc:  # ImportError, or a broken install
            _state["parser"] = None
            log.warning(
                "formulas_shown_as_source",
                reason=f"matplotlib unavailable: {type(exc).__name__}: {exc}",
                hint="pip install 'eink-llm[math]' to draw TeX formulas",
            )
        else:
            _state["parser"] = (
                TextToPath(),
                FontProperties(family="DejaVu Sans", size=REF_SIZE, math_fontfamily="dejavusans"),
                rc_context,
            )
    parser: tuple[Any, Any, Any] | None = _state["parser"]
    return parser


def available() -> bool:
    with _lock:
        return _parser() is not None


_REWRITES = (
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\d)\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\(displaystyle|textstyle|scriptstyle|limits|nolimits|nonumber|notag)(?![a-zA-Z])"), ""),
    (re.compile(r"\\(tag|label)\*?\{[^{}]*\}"), ""),
    (re.compile(r"\\boxed\{"), "{"),
    (re.compile(r"\\(mbox|textnormal|textrm)\{"), r"\\text{"),
    (re.compile(r"\\(big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])"), ""),
    (re.compile(r"\\textbf\{"), r"\\mathbf{"),
    (re.compile(r"\\textit\{"), r"\\mathit{"),
    (re.compile(r"\\operatorname\*"), r"\\operatorname"),
    (re.compile(r"\\dots[bcmio]?(?![a-zA-Z])"), r"\\ldots"),
    (re.compile(r"\\le(?![a-zA-Z])"), r"\\leq"),
    (re.compile(r"\\ge(?![a-zA-Z])"), r"\\geq"),
    (re.compile(r"\\gets(?![a-zA-Z])"), r"\\leftarrow"),
    (re.compile(r"\\land(?![a-zA-Z])"), r"\\wedge"),
    (re.compile(r"\\lor(?![a-zA-Z])"), r"\\vee"),
    (re.compile(r"\\lnot(?![a-zA-Z])"), r"\\neg"),
    (re.compile(r"\\[lr]Vert(?![a-zA-Z])"), r"\\Vert"),
    (re.compile(r"\\[lr]vert(?![a-zA-Z])"), r"\\vert"),
    (re.compile(r"\\implies(?![a-zA-Z])"), r"\\Longrightarrow"),
    (re.compile(r"\\impliedby(?![a-zA-Z])"), r"\\Longleftarrow"),
    (re.compile(r"\\iff(?![a-zA-Z])"), r"\\Longleftrightarrow"),
    (re.compile(r"\\bmod(?![a-zA-Z])"), r"\\ \\mathrm{mod}\\ "),
    (re.compile(r"\\pmod\{([^{}]*)\}"), r"\\ (\\mathrm{mod}\\ \1)"),
    (re.compile(r"\\color\{[^{}]*\}"), ""),
)
_OPERATORS = r"(?:sin|cos|tan|cot|sec|csc|sinh|cosh|tanh|arcsin|arccos|arctan|log|ln|lg|exp|det|dim|ker|deg|gcd)"
# mathtext sets "g\sin\theta" as "gsinθ"; TeX puts thin spaces around operator names.
_OP_BEFORE = re.compile(r"([A-Za-z0-9})])\s*\\(" + _OPERATORS + r")(?![a-zA-Z])")
_OP_AFTER = re.compile(r"\\(" + _OPERATORS + r")(?![a-zA-Z])\s*(?=[A-Za-z0-9\\])(?!\\[,;:! ]|\\left|\\right)")
_ENV = re.compile(r"\\(begin|end)\{(aligned|align\*?|gather\*?|gathered|split|equation\*?|multline\*?|eqnarray\*?)\}")


def _display_fractions(tex: str) -> str:
    """``\\frac`` → ``\\dfrac`` outside other fractions: displayed formulas get full-size fractions, as in TeX."""
    out: list[str] = []
    depth = 0  # brace depth
    inside: list[int] = []  # brace depths at which a fraction's arguments are open
    i = 0
    while i < len(tex):
        if tex.startswith("\\frac", i) and not tex[i + 5 : i + 6].isalpha():
            out.append("\\dfrac" if not inside else "\\frac")
            inside.append(depth)
            pending = 2
            i += 5
            # the two arguments are the next two brace groups; count them as we pass their closing braces
            while i < len(tex) and pending:
                ch = tex[i]
                out.append(ch)
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == inside[-1]:
                        pending -= 1
                elif ch == "\\" and tex.startswith("\\frac", i) and not tex[i + 5 : i + 6].isalpha():
                    out[-1] = "\\frac"
                    i += 5
                    continue
                i += 1
            inside.pop()
            continue
        out.append(tex[i])
        i += 1
    return "".join(out)


def normalise(tex: str, *, display: bool = False) -> list[str]:
    """The formula as one or more mathtext-compatible lines (several for ``\\\\``-separated rows)."""
    text = _ENV.sub("", tex.strip())
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = _OP_AFTER.sub(r"\\\1\\,", _OP_BEFORE.sub(r"\1\\,\\\2", text))
    if display:
        text = _display_fractions(text)
    if "\\begin{" in text:
        return [text]  # matrices, cases: not drawable; the caller shows the source
    rows = [row.replace("&", " ").strip() for row in re.split(r"\\\\(?:\[[^\]]*\])?", text)]
    return [" ".join(row.split()) for row in rows if row.strip()] or [""]


def _path_from(verts: Any, codes: Any) -> PDFPathObject | None:
    path = PDFPathObject()
    n, count = 0, len(codes)
    drawn = False
    while n < count:
        code = int(codes[n])
        if code == 1:  # MOVETO
            path.moveTo(float(verts[n][0]), float(verts[n][1]))
            n += 1
        elif code == 2:  # LINETO
            path.lineTo(float(verts[n][0]), float(verts[n][1]))
            drawn, n = True, n + 1
        elif code == 3:  # CURVE3: quadratic, raise to cubic
            (x0, y0), (cx, cy), (x3, y3) = verts[n - 1], verts[n], verts[n + 1]
            x1, y1 = x0 + 2 / 3 * (cx - x0), y0 + 2 / 3 * (cy - y0)
            x2, y2 = x3 + 2 / 3 * (cx - x3), y3 + 2 / 3 * (cy - y3)
            path.curveTo(float(x1), float(y1), float(x2), float(y2), float(x3), float(y3))
            drawn, n = True, n + 2
        elif code == 4:  # CURVE4
            (x1, y1), (x2, y2), (x3, y3) = verts[n], verts[n + 1], verts[n + 2]
            path.curveTo(float(x1), float(y1), float(x2), float(y2), float(x3), float(y3))
            drawn, n = True, n + 3
        elif code == 79:  # CLOSEPOLY
            path.close()
            n += 1
        else:  # STOP or unknown
            n += 1
    return path if drawn else None


@functools.lru_cache(maxsize=2048)
def formula(tex: str) -> Formula | None:
    """``tex`` (one line, no delimiters) laid out, or None if matplotlib is missing or cannot parse it."""
    if not tex.strip() or re.search(r"(?<!\\)\$", tex) or len(tex) > 2000:
        return None
    with _lock:
        parser = _parser()
        if parser is None:
            return None
        to_path, prop, rc_context = parser
        try:
            with rc_context({"mathtext.fontset": "dejavusans", "mathtext.default": "it"}):
                width, height, depth, _, _ = to_path.mathtext_parser.parse(f"${tex}$", 72, prop)
                verts, codes = to_path.get_text_path(prop, f"${tex}$", ismath=True)
        except Exception:  # ValueError from the parser, or anything odd inside matplotlib
            return None
    path = _path_from(verts, codes)
    return Formula(tex, width / REF_SIZE, (height - depth) / REF_SIZE, depth / REF_SIZE, path)


_VERBATIM = re.compile(
    r"\\(?:text|mathrm|mathit|mathbf|mathsf|mathtt|mathcal|mathbb|mathfrak|operatorname)\s*\{|\\sqrt\s*\["
)
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def upright_digits(tex: str) -> str:
    """Numbers in ``\\mathrm``: mathtext's italic default slants digits too, which TeX never does."""
    out: list[str] = []
    i = 0
    while i < len(tex):
        verbatim = _VERBATIM.match(tex, i)
        number = _DIGITS.match(tex, i)
        if verbatim:  # copy the argument untouched, up to its matching closing bracket
            opener = verbatim.group()[-1]
            closer = "]" if opener == "[" else "}"
            depth, j = 1, verbatim.end()
            while j < len(tex) and depth:
                depth += (tex[j] == opener) - (tex[j] == closer)
                j += 1
            out.append(tex[i:j])
            i = j
        elif tex[i] == "\\":
            command = re.match(r"\\([a-zA-Z]+|.)", tex[i:])
            step = len(command.group()) if command else 1
            out.append(tex[i : i + step])
            i += step
        elif number is not None:
            out.append(f"\\mathrm{{{number.group()}}}")
            i = number.end()
        else:
            out.append(tex[i])
            i += 1
    return "".join(out)


def formulas(tex: str, *, display: bool = False) -> list[Formula] | None:
    """Every row of a formula laid out, or None if any row cannot be drawn (``display``: full-size fractions)."""
    rows = [formula(upright_digits(row)) or formula(row) for row in normalise(tex, display=display)]
    if not rows or any(row is None for row in rows):
        return None
    return [row for row in rows if row is not None]
