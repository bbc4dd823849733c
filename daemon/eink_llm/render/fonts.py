"""The bundled DejaVu fonts, per-character fallback, and the text hygiene every string needs before reportlab.

We embed our own TrueType fonts instead of using the PDF base-14 fonts because those only cover Latin-1:
Greek, Cyrillic, arrows and maths symbols would come out as black boxes or be dropped. reportlab subsets
embedded TTFs automatically, so a page only carries the glyphs it uses (a few tens of kB).

Registration touches reportlab's process-wide font registry, so it happens once per process, lazily (the
CLI's ``--help`` should not pay for parsing 3 MB of fonts) and under a lock, because two worker threads may
render their first answers at the same moment.

Characters the face in use lacks are split into runs set in a fallback font (:func:`runs`, :func:`markup`);
see :mod:`eink_llm.render.fallback` for where those fonts come from. Characters no font has are collected
per render (:func:`collect_missing`) so the caller can log them once.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from pathlib import Path

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont

from eink_llm.errors import RenderError
from eink_llm.render import shaping
from eink_llm.render.fallback import UPRIGHT, Fallbacks

FONT_DIR = Path(__file__).resolve().parent / "fonts"

SANS = "DejaVuSans"
SANS_BOLD = "DejaVuSans-Bold"
SANS_ITALIC = "DejaVuSans-Oblique"
SANS_BOLD_ITALIC = "DejaVuSans-BoldOblique"
MONO = "DejaVuSansMono"
MONO_BOLD = "DejaVuSansMono-Bold"

_FILES = {
    SANS: "DejaVuSans.ttf",
    SANS_BOLD: "DejaVuSans-Bold.ttf",
    SANS_ITALIC: "DejaVuSans-Oblique.ttf",
    SANS_BOLD_ITALIC: "DejaVuSans-BoldOblique.ttf",
    MONO: "DejaVuSansMono.ttf",
    MONO_BOLD: "DejaVuSansMono-Bold.ttf",
}

#: (monospaced, bold, italic) -> face
FACES = {
    (False, False, False): SANS,
    (False, True, False): SANS_BOLD,
    (False, False, True): SANS_ITALIC,
    (False, True, True): SANS_BOLD_ITALIC,
    (True, False, False): MONO,
    (True, True, False): MONO_BOLD,
    (True, False, True): MONO,
    (True, True, True): MONO_BOLD,
}
STYLE_OF = {face: key for key, face in reversed(FACES.items())}

_lock = threading.Lock()
_registered = False
_coverage: dict[str, frozenset[int]] = {}
_chars: dict[str, frozenset[str]] = {}
_fallbacks = Fallbacks()
_picks: dict[tuple[str, str], tuple[str, bool]] = {}  # (face, char) -> (font to use, no font has it)
_missing: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("eink_llm_missing_chars", default=None)


def _to_unicode_cmap(fontname: str, subset: list[int]) -> str:
    """reportlab's ToUnicode CMap, with characters beyond U+FFFF written as UTF-16 (reportlab writes 5 hex digits).

    Without this, text extraction and search read an emoji such as U+1F600 as U+1F60. Codes that
    :mod:`eink_llm.render.shaping` made up for shaped glyphs map to the text they stand for; a glyph that stands
    for no text of its own (the second half of a split vowel sign) gets no entry.
    """
    entries = []
    for i, v in enumerate(subset):
        text = shaping.unicode_text(fontname, v) if v >= 0xE000 else None
        if text is None:
            text = chr(v)
        if text:
            entries.append(f"<{i:02X}> <{text.encode('utf-16-be', 'surrogatepass').hex().upper()}>")
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo",
        f"<< /Registry ({fontname})",
        f"/Ordering ({fontname})",
        "/Supplement 0",
        ">> def",
        f"/CMapName /{fontname} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        f"<00> <{len(subset) - 1:02X}>",
        "endcodespacerange",
        f"{len(entries)} beginbfchar",
        *entries,
        "endbfchar",
        "endcmap",
        "CMapName currentdict /CMap defineresource pop",
        "end",
        "end",
    ]
    return "\n".join(lines)


def ensure_fonts() -> None:
    """Register the bundled fonts with reportlab, once per process.

    The flag is checked before taking the lock so the common (already registered) path costs nothing, and
    again inside it so that two threads racing on the first call do not both register.
    """
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        try:
            ttfonts.makeToUnicodeCMap = _to_unicode_cmap
            for name, filename in _FILES.items():
                font = TTFont(name, str(FONT_DIR / filename))
                pdfmetrics.registerFont(font)
                _coverage[name] = frozenset(font.face.charToGlyph)
                _chars[name] = frozenset(map(chr, _coverage[name]))
            # Lets <b> and <i> in paragraph markup pick the right face. There is no mono italic bundled;
            # italic code is rare and upright is an honest fallback.
            pdfmetrics.registerFontFamily(
                SANS, normal=SANS, bold=SANS_BOLD, italic=SANS_ITALIC, boldItalic=SANS_BOLD_ITALIC
            )
            pdfmetrics.registerFontFamily(MONO, normal=MONO, bold=MONO_BOLD, italic=MONO, boldItalic=MONO_BOLD)
            _fallbacks.upright = _coverage[SANS]
        except Exception as exc:
            raise RenderError(
                "The fonts needed to lay out the answer could not be loaded.",
                "Reinstall eink-llm; the font files that ship with it are missing or damaged.",
                detail=f"{type(exc).__name__}: {exc} (looked in {FONT_DIR})",
            ) from exc
        _registered = True


def has_glyph(font: str, char: str) -> bool:
    """Whether ``font`` draws ``char`` itself (rather than an empty box). Needs :func:`ensure_fonts`."""
    return ord(char) in _coverage.get(font, frozenset())


def mono_runs(text: str) -> list[tuple[str, str]]:
    """Split code into (font, run) pieces: mono where it has the glyph, then sans, then system fallbacks."""
    return runs(text, MONO)


def _ignorable(code: int) -> bool:
    """Default-ignorable code points (joiners, variation selectors, tags): invisible, never worth a box."""
    return (
        code in (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x3164, 0xFEFF, 0xFFA0)
        or 0x180B <= code <= 0x180F
        or 0x200B <= code <= 0x200F
        or 0x202A <= code <= 0x202E
        or 0x2060 <= code <= 0x206F
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0000 <= code <= 0xE0FFF
        or 0x1BCA0 <= code <= 0x1BCA3
    )


_upright_lock = threading.Lock()
_upright_ready = False


def _ensure_upright() -> None:
    """Register bundled DejaVu Sans a second time, upright in every style, for letters its other faces lack."""
    global _upright_ready
    if _upright_ready:
        return
    with _upright_lock:
        if not _upright_ready:
            pdfmetrics.registerFont(TTFont(UPRIGHT, str(FONT_DIR / _FILES[SANS])))
            pdfmetrics.registerFontFamily(UPRIGHT, normal=UPRIGHT, bold=SANS_BOLD, italic=UPRIGHT, boldItalic=SANS_BOLD)
            _upright_ready = True


#: DejaVu Sans (upright in every style) with each character no font has mapped to its "□" glyph, so such
#: characters still show as a box *and* keep their code point in the text layer (search, copy): reportlab
#: would otherwise write them as glyph 0 with no Unicode value, and they would vanish from the text.
#: reportlab shares one font object per font file, so this is the bundled regular face under another name.
TOFU = "DejaVuSansTofu"
_tofu_ready = False


def _tofu_for(code: int) -> str:
    global _tofu_ready
    with _upright_lock:
        if not _tofu_ready:
            pdfmetrics.registerFont(TTFont(TOFU, str(FONT_DIR / _FILES[SANS])))
            pdfmetrics.registerFontFamily(TOFU, normal=TOFU, bold=TOFU, italic=TOFU, boldItalic=TOFU)
            _tofu_ready = True
        face = pdfmetrics.getFont(TOFU).face
        if code not in face.charToGlyph:
            face.charToGlyph[code] = face.charToGlyph[0x25A1]
            face.charWidths[code] = face.charWidths[0x25A1]
    return TOFU


def _pick(face: str, char: str) -> tuple[str, bool]:
    """The font for ``char`` where ``face`` lacks it, and whether no font at all has it."""
    key = (face, char)
    found = _picks.get(key)
    if found is not None:
        return found
    code = ord(char)
    mono = STYLE_OF.get(face, (False,))[0]
    if mono and code in _coverage[SANS]:
        result = (SANS, False)
    else:
        font = _fallbacks.font_for(code)
        if font == UPRIGHT:
            _ensure_upright()
        result = (font, False) if font is not None else (face if _ignorable(code) else _tofu_for(code), True)
    _picks[key] = result
    return result


def runs(text: str, face: str = SANS) -> list[tuple[str, str]]:
    """Split ``text`` into (font, run) pieces: ``face`` where it has the glyph, else the first fallback that does.

    Characters no font has are set in :data:`TOFU` (a box that keeps the character in the text layer) and
    recorded for the current :func:`collect_missing`; invisible format characters no font has are dropped.
    """
    ensure_fonts()
    chars = _chars.get(face)
    if chars is None:  # a fallback font's own name: it was chosen for these characters
        return [(face, text)] if text else []
    if chars.issuperset(text):
        return [(face, text)] if text else []
    out: list[tuple[str, str]] = []
    missing = _missing.get()
    for ch in text:
        if ch == " " and out:  # every font has a space: keep it in the run, so CJK text is not cut into pieces
            font = out[-1][0]
        elif ch in chars:
            font = face
        else:
            font, lost = _pick(face, ch)
            if lost:
                if _ignorable(ord(ch)):
                    continue
                if missing is not None:
                    missing.add(ch)
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + ch)
        else:
            out.append((font, ch))
    return out


def markup(text: str, face: str = SANS, *, tag_all: bool = False) -> str:
    """``text`` as escaped paragraph markup, with ``<font>`` tags around the runs ``face`` cannot draw.

    ``face`` is the face the paragraph will be using at this point (after its ``<b>``/``<i>``); with
    ``tag_all`` every run is tagged, for text set in a face other than the paragraph's (inline code).
    """
    parts = []
    for font, run in runs(text, face):
        if font == face and not tag_all:
            parts.append(escape(run))
        else:
            parts.append(f'<font name="{font}">{escape(run)}</font>')
    return "".join(parts)


def text_width(text: str, face: str, size: float) -> float:
    """Width of ``text`` set in ``face`` with fallbacks, in points."""
    return float(sum(stringWidth(run, font, size) for font, run in runs(text, face)))


@contextlib.contextmanager
def collect_missing() -> Iterator[set[str]]:
    """Collect, in the yielded set, the characters no font could draw while the block runs (this thread only)."""
    found: set[str] = set()
    token = _missing.set(found)
    try:
        yield found
    finally:
        _missing.reset(token)


# C0/C1 control characters other than tab and newline have no glyph, and some (NUL) upset PDF string
# handling in viewers. Bidi controls and the BOM do nothing in our left-to-right layout but some would
# show as empty boxes. Line/paragraph separators become plain newlines.
_CONTROL: dict[int, int | None] = {
    c: None
    for c in (
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        *range(0x7F, 0xA0),
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0xFEFF,
    )
}
_CONTROL.update({0x0D: None, 0x2028: 0x0A, 0x2029: 0x0A})


def clean_text(text: object) -> str:
    """Make any value safe to lay out: a str with no control characters and no lone surrogates.

    LLM output and error details are untrusted text; a lone surrogate makes UTF-8 encoding (inside
    reportlab's font subsetter) raise, which would turn a displayable answer into a failure.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text.replace("\r\n", "\n")
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.translate(_CONTROL)


def escape(text: str) -> str:
    """Escape text for reportlab's paragraph mini-markup, where ``a < b && c`` would otherwise be a tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    """Escape text for a double-quoted attribute value in the mini-markup (e.g. a link's href)."""
    return escape(text).replace('"', "&quot;")
