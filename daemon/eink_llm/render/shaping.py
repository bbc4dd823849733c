"""Complex-script shaping (Indic, Thai, Khmer, Myanmar, ...) with HarfBuzz, through reportlab's uharfbuzz support.

Devanagari, Bengali, Tamil and their relatives need *shaping*: consonant clusters become conjuncts or half forms,
some vowel signs are drawn before the consonant they follow in the text, Thai tone marks stack above vowel marks.
Drawn letter by letter they are legible only to a patient reader. reportlab (≥ 4.0) shapes paragraph text with
HarfBuzz when the optional ``uharfbuzz`` package is installed and a paragraph style asks for it
(``shaping=1``); this module turns that on, only for paragraphs that hold such scripts (:func:`shaped_style`),
and fixes the two things reportlab gets wrong for us:

* **Words set in more than one font.** reportlab shapes a whole word with the *first* fragment's font and then
  looks the glyph ids up in each fragment's own font, so ``दुनिया,`` (letters from Noto Sans Devanagari, the
  comma from DejaVu) came out with a wrong glyph for the comma. :func:`shape_frag_word` shapes each single-font
  run of a word on its own.
* **The text layer.** Glyphs that no character maps to (half forms, conjuncts, contextual vowel signs) are
  written by reportlab as private-use characters (U+E000…), and a vowel sign drawn before its consonant comes
  first in the text. Search and copy would find neither ``नमस्ते`` nor ``दुनिया``. For every HarfBuzz cluster
  we give its glyphs, in drawing order, the cluster's characters in reading order: a glyph whose text is not
  its own character is written under an *alias* code (same glyph, a code point in plane 15) whose ToUnicode
  entry is that text (see :func:`unicode_text`, used by :func:`eink_llm.render.fonts._to_unicode_cmap`). The
  text layer then reads exactly as the answer was written.

Without ``uharfbuzz`` (the optional extra ``shaping``), everything here is a no-op and such scripts are drawn
letter by letter, as before.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from typing import Any

from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.pdfmetrics import stringWidth

#: Scripts whose letters change shape or position with their neighbours (Brahmic scripts, Thai, Lao, Tibetan,
#: Myanmar, Khmer, Mongolian, ...). Arabic is joined by :func:`eink_llm.render.bidi.shape_arabic` instead.
COMPLEX = re.compile("[\u0900-\u109f\u1780-\u18af\u1900-\u1cff\ua800-\uabff\U00011000-\U00011fff]")

#: Aliases are allocated from here (Supplementary Private Use Area-B), far from reportlab's own U+E000 range.
_ALIAS_BASE = 0x100000
_lock = threading.RLock()
_texts: dict[str, dict[int, str]] = {}  # font key (as in the PDF's BaseFont) -> alias code -> text
_aliases: dict[tuple[str, int, str], int] = {}  # (font key, glyph id, text) -> alias code
_installed = False
#: Text of a glyph that stands for no character of its own.
ZERO_WIDTH = "\u200b"


def available() -> bool:
    """Whether reportlab can shape here (``uharfbuzz`` importable)."""
    return ttfonts.uharfbuzz is not None


def needs_shaping(text: str) -> bool:
    return COMPLEX.search(text) is not None


@functools.lru_cache(maxsize=256)
def _shaped_copy(style: ParagraphStyle) -> ParagraphStyle:
    return ParagraphStyle(f"{style.name}-shaped", parent=style, shaping=1)


def shaped_style(style: ParagraphStyle, markup: str) -> ParagraphStyle:
    """``style``, asking reportlab to shape, if ``markup`` holds a complex script and shaping is available."""
    if not available() or not needs_shaping(markup):
        return style
    install()
    return _shaped_copy(style)


def install() -> None:
    """Route reportlab's paragraph shaping through :func:`shape_frag_word` (once per process)."""
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            from reportlab.platypus import paragraph

            paragraph.shapeFragWord = shape_frag_word
            _installed = True


def _font_key(face: Any) -> str:
    return bytes(face.name + face.subfontNameX).decode("latin-1")


def unicode_text(base_font_name: str, code: int) -> str | None:
    """The text an alias code of a font stands for (``base_font_name`` as in the PDF: ``ABCDEF+Name``)."""
    table = _texts.get(base_font_name.split("+", 1)[-1])
    return None if table is None else table.get(code)


def _alias(ttf: Any, code: int, text: str) -> int:
    """A code drawing the same glyph as ``code`` in ``ttf`` whose ToUnicode entry will be ``text``."""
    face = ttf.face
    gid = face.charToGlyph[code]
    key = (_font_key(face), gid, text)
    found = _aliases.get(key)
    if found is not None:
        return found
    alias = _ALIAS_BASE + len(_aliases)
    while alias in face.charToGlyph:
        alias += 1
    face.charToGlyph[alias] = gid
    face.charWidths[alias] = face.charWidths.get(code, 0)
    _aliases[key] = alias
    _texts.setdefault(key[0], {})[alias] = text
    return alias


def _real_text(ttf: Any, code: int) -> str | None:
    """The character a glyph code stands for: itself, unless it is a private code reportlab or we made up."""
    if code >= _ALIAS_BASE:
        return _texts.get(_font_key(ttf.face), {}).get(code)
    if 0xE000 <= code <= 0xF8FF:
        return None
    return chr(code)


def _pieces(text: str, count: int) -> list[str]:
    """``text`` cut into ``count`` non-empty pieces for ``count`` glyphs, in order.

    One character per glyph, the last glyph taking the rest. A cluster with more glyphs than characters (a
    Tamil two-part vowel sign drawn on both sides of its consonant, Thai SARA AM) is first decomposed
    (கொ → க ெ ா), which normalises back to the same text; glyphs still left over stand for a zero-width
    space, as a PDF text layer has no way to say "nothing".
    """
    if count > len(text):
        for form in ("NFD", "NFKD"):
            decomposed = unicodedata.normalize(form, text)
            if len(decomposed) <= count:
                text = decomposed
        if count > len(text):
            return [*text, *[ZERO_WIDTH] * (count - len(text))]
    return [*text[: count - 1], text[count - 1 :]]


def _clusters(glyphs: list[tuple[int, int, int]], text: str) -> list[tuple[list[tuple[int, int, int]], str]]:
    """The glyphs grouped by HarfBuzz cluster, each with its text; a cluster with more glyphs than characters
    is merged with the next one (a vowel sign split around its consonant belongs to both)."""
    starts = sorted({cluster for _, _, cluster in glyphs})
    ends = dict(zip(starts, [*starts[1:], len(text)], strict=True))
    groups: list[tuple[list[tuple[int, int, int]], str]] = []
    merge = False
    for glyph in glyphs:
        cluster = glyph[2]
        if groups and (groups[-1][0][-1][2] == cluster or merge):
            members, chars = groups[-1]
            members.append(glyph)
            if members[-2][2] != cluster:
                chars += text[cluster : ends[cluster]]
            groups[-1] = (members, chars)
        else:
            groups.append(([glyph], text[cluster : ends[cluster]]))
        members, chars = groups[-1]
        merge = len(members) > len(chars)
    return groups


def _fix_text(word: list[Any], text: str) -> list[Any]:
    """Give the glyphs of every cluster of a shaped word the cluster's characters, in reading order."""
    glyphs: list[tuple[int, int, int]] = []  # (piece index, position in piece, cluster)
    for p, (_, s) in enumerate(word[1:], start=1):
        data = getattr(s, "__shapeData__", None)
        if data is None:
            return word
        glyphs.extend((p, i, sd.cluster) for i, sd in enumerate(data))
    codes = {p: [ord(c) for c in word[p][1]] for p in range(1, len(word))}
    changed = False
    for members, expected in _clusters(glyphs, text):
        fonts = [pdfmetrics.getFont(word[p][0].fontName) for p, _, _ in members]
        natural = [_real_text(ttf, codes[p][i]) for ttf, (p, i, _) in zip(fonts, members, strict=True)]
        if None not in natural and "".join(t for t in natural if t is not None) == expected:
            continue
        for ttf, (p, i, _), piece, own in zip(fonts, members, _pieces(expected, len(members)), natural, strict=True):
            if piece != own:
                codes[p][i] = _alias(ttf, codes[p][i], piece)
                changed = True
    if not changed:
        return word
    out = word.__class__(word[:1])
    for p, (frag, s) in enumerate(word[1:], start=1):
        out.append((frag, ttfonts.ShapedStr("".join(map(chr, codes[p])), shapeData=s.__shapeData__)))
    return out


#: Shaped runs by (font, length and size of each of the run's fragments, text): the glyphs and positions of a
#: word depend on nothing else, and words repeat (shaping a word costs ~0.1 ms, more than laying it out).
_CACHE_SIZE = 20000
_cache: dict[tuple[str, tuple[tuple[int, float], ...], str], tuple[float, tuple[tuple[int, str], ...]] | None] = {}


def _shape_run(run: list[Any]) -> list[Any]:
    """Shape one single-font run of a word: ``run`` is ``[width, (frag, text), ...]``."""
    frags = [f for f, _ in run[1:]]
    text = "".join(s for _, s in run[1:])
    key = (frags[0].fontName, tuple((len(s), float(f.fontSize)) for f, s in run[1:]), text)
    if key in _cache:
        found = _cache[key]
        if found is None:
            return run
        width, pieces = found
        out: list[Any] = ttfonts.makeShapedFragWord(run)([width])
        out.extend((frags[index], piece) for index, piece in pieces)
        return out
    shaped = ttfonts.shapeFragWord(run)
    if shaped is run or not isinstance(shaped, ttfonts.ShapedFragWord):
        result, entry = run, None
    else:
        result = _fix_text(shaped, text)
        index = {id(f): n for n, f in enumerate(frags)}
        entry = (float(result[0]), tuple((index[id(f)], piece) for f, piece in result[1:]))
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[key] = entry
    return result


def shape_frag_word(word: list[Any]) -> list[Any]:
    """reportlab's ``shapeFragWord``, shaping each single-font run of a word separately (see module docstring)."""
    already_shaped = isinstance(word, ttfonts.ShapedFragWord)
    if already_shaped:
        return word
    with _lock:  # reportlab's private-glyph allocation and our aliases are shared, per-process state
        runs: list[list[Any]] = []
        key = None
        for frag, s in word[1:]:
            this = None if hasattr(frag, "cbDefn") else frag.fontName
            if not runs or this != key or this is None:
                runs.append([0.0])
                key = this
            runs[-1].append((frag, s))
        if len(runs) == 1:
            return _shape_run(word)
        parts = []
        width = float(word[0])
        for run in runs:
            frag = run[1][0]
            if hasattr(frag, "cbDefn"):
                parts.append(run)
                continue
            natural = sum(stringWidth(s, f.fontName, f.fontSize) for f, s in run[1:])
            run[0] = natural
            part = _shape_run(run)
            width += float(part[0]) - natural
            parts.append(part)
        if all(part is run for part, run in zip(parts, runs, strict=True)):
            return word
        out: list[Any] = ttfonts.makeShapedFragWord(word)([width])
        for part in parts:
            out.extend(tuple(piece) for piece in part[1:])
        return out
