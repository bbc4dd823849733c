"""The bundled DejaVu fonts, and the text hygiene every string needs before reportlab sees it.

We embed our own TrueType fonts instead of using the PDF base-14 fonts because those only cover Latin-1:
Greek, Cyrillic, arrows and maths symbols would come out as black boxes or be dropped. reportlab subsets
embedded TTFs automatically, so a page only carries the glyphs it uses (a few tens of kB).

Registration touches reportlab's process-wide font registry, so it happens once per process, lazily (the
CLI's ``--help`` should not pay for parsing 3 MB of fonts) and under a lock, because two worker threads may
render their first answers at the same moment.
"""

from __future__ import annotations

import threading
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from eink_llm.errors import RenderError

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

_lock = threading.Lock()
_registered = False
_coverage: dict[str, frozenset[int]] = {}


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
            for name, filename in _FILES.items():
                font = TTFont(name, str(FONT_DIR / filename))
                pdfmetrics.registerFont(font)
                _coverage[name] = frozenset(font.face.charToGlyph)
            # Lets <b> and <i> in paragraph markup pick the right face. There is no mono italic bundled;
            # italic code is rare and upright is an honest fallback.
            pdfmetrics.registerFontFamily(
                SANS, normal=SANS, bold=SANS_BOLD, italic=SANS_ITALIC, boldItalic=SANS_BOLD_ITALIC
            )
            pdfmetrics.registerFontFamily(MONO, normal=MONO, bold=MONO_BOLD, italic=MONO, boldItalic=MONO_BOLD)
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
    """Split ``text`` into (font, run) pieces: mono where it has the glyph, sans elsewhere.

    DejaVu Sans Mono lacks some scripts that DejaVu Sans has (Hebrew, Arabic, some symbols); code and
    inline code containing them should still show letters, not boxes.
    """
    runs: list[tuple[str, str]] = []
    for ch in text:
        font = MONO if ch.isspace() or has_glyph(MONO, ch) or not has_glyph(SANS, ch) else SANS
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + ch)
        else:
            runs.append((font, ch))
    return runs


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
