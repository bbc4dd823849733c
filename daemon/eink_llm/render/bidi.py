"""Right-to-left scripts for reportlab, which sets every line left to right and knows no Arabic joining.

* :func:`shape_arabic` picks each Arabic letter's contextual form (isolated, initial, medial, final) and the
  lam-alef ligatures from the Unicode presentation-form blocks, which DejaVu Sans covers. The forms table is
  derived from ``unicodedata`` at first use, so it follows Python's Unicode version instead of a hand copy.
* :func:`levels` and :func:`visual_order` implement the Unicode bidi algorithm (UAX #9) for one paragraph
  without explicit embeddings (rules W1-W7, N1-N2, I1-I2, L1-L2; embedding controls are removed from all
  text beforehand by :func:`eink_llm.render.fonts.clean_text`), with bracket mirroring.
* :func:`visual_lines` reorders the lines of a paragraph that reportlab has broken up in logical order, as
  usual; :class:`eink_llm.render.paragraphs.BidiPara` applies it only when drawing, so page breaks and splits
  keep working on the logical text.

Text stays in the PDF in visual order, as most PDF producers write it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

RTL_CHARS = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]")
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")
_ALEFS = (0x0622, 0x0623, 0x0625, 0x0627)
_LAM = 0x0644
_FORM_NAMES = {"<isolated>": 0, "<final>": 1, "<initial>": 2, "<medial>": 3}
_MIRROR = dict(zip("()[]{}<>«»‹›≤≥⁅⁆⁽⁾₍₎⟨⟩⟦⟧", ")(][}{><»«›‹≥≤⁆⁅⁾⁽₎₍⟩⟨⟧⟦", strict=True))


def has_rtl(text: str) -> bool:
    return RTL_CHARS.search(text) is not None


def base_is_rtl(text: str) -> bool:
    """Whether the first strong character is right-to-left (rules P2/P3): such a paragraph reads from the right."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind == "L":
            return False
        if kind in ("R", "AL"):
            return True
    return False


# -- Arabic shaping ----------------------------------------------------------------------------------------------


@functools.cache
def _forms() -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Presentation forms per letter ([isolated, final, initial, medial], 0 = none) and lam-alef per alef."""
    letters: dict[int, list[int]] = {}
    lam_alef: dict[int, list[int]] = {}
    for code in (*range(0xFB50, 0xFDFF), *range(0xFE70, 0xFEFF)):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) < 2 or parts[0] not in _FORM_NAMES:
            continue
        form, chars = _FORM_NAMES[parts[0]], [int(p, 16) for p in parts[1:]]
        if len(chars) == 1:
            entry = letters.setdefault(chars[0], [0, 0, 0, 0])
            entry[form] = entry[form] or code  # the first (basic) form wins over later variants
        elif len(chars) == 2 and chars[0] == _LAM and chars[1] in _ALEFS:
            lam_alef.setdefault(chars[1], [0, 0, 0, 0])[form] = code
    return letters, lam_alef


def _joining(code: int, letters: dict[int, list[int]]) -> str:
    """'D' dual-joining, 'R' right-joining only, 'C' join-causing, 'T' transparent, 'U' non-joining."""
    if code in (0x0640, 0x200D):
        return "C"
    if unicodedata.category(chr(code)) in ("Mn", "Me"):
        return "T"
    forms = letters.get(code)
    if forms is None or not _ARABIC.match(chr(code)):
        return "U"
    return "D" if forms[2] or forms[3] else "R"


def shape_arabic(text: str) -> str:
    """Arabic letters replaced by their contextual presentation forms; any other text unchanged."""
    if _ARABIC.search(text) is None:
        return text
    letters, lam_alef = _forms()
    codes = [ord(c) for c in text]
    kinds = [_joining(c, letters) for c in codes]
    out: list[str] = []
    skip: set[int] = set()

    def neighbour(i: int, step: int) -> int:
        i += step
        while 0 <= i < len(codes) and kinds[i] == "T":
            i += step
        return i if 0 <= i < len(codes) else -1

    for i, code in enumerate(codes):
        if i in skip:
            continue
        kind = kinds[i]
        if kind not in ("D", "R"):
            out.append(chr(code))
            continue
        prev, nxt = neighbour(i, -1), neighbour(i, 1)
        joins_prev = prev >= 0 and kinds[prev] in ("D", "C")
        if code == _LAM and nxt >= 0 and codes[nxt] in lam_alef:
            ligature = lam_alef[codes[nxt]][1 if joins_prev else 0]
            if ligature:
                out.append(chr(ligature))
                out.extend(chr(codes[j]) for j in range(i + 1, nxt))  # marks on the lam
                skip.update(range(i + 1, nxt + 1))
                continue
        joins_next = kind == "D" and nxt >= 0 and kinds[nxt] in ("D", "R", "C")
        forms = letters[code]
        form = (3 if joins_next else 1) if joins_prev else (2 if joins_next else 0)
        out.append(chr(forms[form] or forms[1 if joins_prev else 0] or code))
    return "".join(out)


# -- bidi levels and reordering -----------------------------------------------------------------------------------

_NEUTRAL = {"B", "S", "WS", "ON"}
_OPENING = dict(zip("([{⟨⟦⁅⁽₍⌈⌊〈", ")]}⟩⟧⁆⁾₎⌉⌋〉", strict=True))


def _strong(t: str) -> str | None:
    return "R" if t in ("R", "EN", "AN") else "L" if t == "L" else None


def _paired_brackets(text: str, types: list[str], sos: str) -> None:
    """Rule N0: a bracket pair takes the direction of what it encloses (or of its context), as a unit."""
    stack: list[tuple[str, int]] = []
    pairs: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if types[i] != "ON":
            continue
        if ch in _OPENING:
            if len(stack) >= 63:
                break
            stack.append((_OPENING[ch], i))
        else:
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == ch:
                    pairs.append((stack[depth][1], i))
                    del stack[depth:]
                    break
    embedding = sos
    for start, end in sorted(pairs):
        inside = {_strong(t) for t in types[start + 1 : end]} - {None}
        if embedding in inside:
            direction = embedding
        elif inside:
            before = next((strong for t in reversed(types[:start]) if (strong := _strong(t))), sos)
            direction = before
        else:
            continue
        types[start] = types[end] = direction


def levels(text: str, base: int) -> list[int]:
    """Resolved embedding level of each character of one line (``base`` 0 = LTR paragraph, 1 = RTL)."""
    n = len(text)
    types = [unicodedata.bidirectional(ch) or "L" for ch in text]
    sos = "R" if base else "L"
    for i, t in enumerate(types):  # W1; boundary neutrals and leftover controls act as neutrals
        if t == "NSM":
            types[i] = types[i - 1] if i and types[i - 1] not in ("BN",) else sos
        elif t in ("BN", "LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"):
            types[i] = "ON"
    last_strong = sos
    for i, t in enumerate(types):  # W2, W3
        if t in ("L", "R", "AL"):
            last_strong = t
            if t == "AL":
                types[i] = "R"
        elif t == "EN" and last_strong == "AL":
            types[i] = "AN"
    for i in range(1, n - 1):  # W4
        if types[i] == "ES" and types[i - 1] == types[i + 1] == "EN":
            types[i] = "EN"
        elif types[i] == "CS" and types[i - 1] == types[i + 1] and types[i - 1] in ("EN", "AN"):
            types[i] = types[i - 1]
    i = 0
    while i < n:  # W5: European terminators next to a European number
        if types[i] == "ET":
            j = i
            while j < n and types[j] == "ET":
                j += 1
            if (i > 0 and types[i - 1] == "EN") or (j < n and types[j] == "EN"):
                types[i:j] = ["EN"] * (j - i)
            i = j
        else:
            i += 1
    types = ["ON" if t in ("ES", "ET", "CS") else t for t in types]  # W6
    last_strong = sos
    for i, t in enumerate(types):  # W7
        if t in ("L", "R"):
            last_strong = t
        elif t == "EN" and last_strong == "L":
            types[i] = "L"
    _paired_brackets(text, types, sos)
    i = 0
    while i < n:  # N1, N2
        if types[i] in _NEUTRAL:
            j = i
            while j < n and types[j] in _NEUTRAL:
                j += 1
            before = sos if i == 0 else ("R" if types[i - 1] in ("R", "EN", "AN") else "L")
            after = sos if j == n else ("R" if types[j] in ("R", "EN", "AN") else "L")
            types[i:j] = [before if before == after else sos] * (j - i)
            i = j
        else:
            i += 1
    result = []
    for t in types:  # I1, I2
        if base == 0:
            result.append(1 if t == "R" else 2 if t in ("AN", "EN") else 0)
        else:
            result.append(2 if t in ("L", "EN", "AN") else 1)
    i = n  # L1: trailing whitespace goes back to the paragraph level
    while i > 0 and unicodedata.bidirectional(text[i - 1]) in ("WS", "S", "B", "BN"):
        i -= 1
        result[i] = base
    return result


def visual_order(lvls: list[int]) -> list[int]:
    """Logical indexes in left-to-right display order (rule L2)."""
    order = list(range(len(lvls)))
    if not lvls:
        return order
    top, lowest_odd = max(lvls), min((lv for lv in lvls if lv % 2), default=None)
    if lowest_odd is None:
        return order
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if lvls[order[i]] >= level:
                j = i
                while j < len(order) and lvls[order[j]] >= level:
                    j += 1
                order[i:j] = reversed(order[i:j])
                i = j
            else:
                i += 1
    return order


def marks_after_bases(order: list[int], text: str, lvls: list[int]) -> list[int]:
    """Rule L3: in right-to-left runs, combining marks come before their base once reversed; put them after.

    Fonts draw a mark over the glyph *before* it, so a mark must follow its letter in the drawn string.
    """
    out: list[int] = []
    pending: list[int] = []
    for index in order:
        if lvls[index] % 2 and unicodedata.category(text[index]) in ("Mn", "Me"):
            pending.append(index)
            continue
        out.append(index)
        if pending:
            out.extend(reversed(pending))
            pending = []
    out.extend(pending)
    return out


def display(text: str, base: int | None = None) -> str:
    """One line of logical text in visual order, brackets mirrored in right-to-left runs."""
    if base is None:
        base = 1 if base_is_rtl(text) else 0
    if not has_rtl(text) and base == 0:
        return text
    lvls = levels(text, base)
    order = marks_after_bases(visual_order(lvls), text, lvls)
    return "".join(_MIRROR.get(text[i], text[i]) if lvls[i] % 2 else text[i] for i in order)


# -- paragraphs ------------------------------------------------------------------------------------------------------

_OBJECT = "\ufffc"  # stands for an inline object (formula, image) while reordering


def _visual_frag_line(line: Any, base: int) -> Any:
    units: list[tuple[str, list[Any]]] = []  # (character, frags it comes from)
    words = line.words
    i = 0
    while i < len(words):
        frag = words[i]
        defn = getattr(frag, "cbDefn", None)
        if defn is not None:
            group = [frag]
            # An onDraw callback marks where the next inline image (a formula) starts: keep the pair together.
            if getattr(defn, "kind", "") == "onDraw" and i + 1 < len(words) and hasattr(words[i + 1], "cbDefn"):
                group.append(words[i + 1])
                i += 1
            units.append((_OBJECT, group))
        else:
            units.extend((ch, [frag]) for ch in frag.text)
        i += 1
    text = "".join(ch for ch, _ in units)
    if not has_rtl(text) and base == 0:
        return line
    lvls = levels(text, base)
    out: list[Any] = []
    source: Any = None
    for index in marks_after_bases(visual_order(lvls), text, lvls):
        ch, frags = units[index]
        if ch == _OBJECT and hasattr(frags[0], "cbDefn"):
            out.extend(frags)
            source = None
            continue
        if lvls[index] % 2:
            ch = _MIRROR.get(ch, ch)
        if frags[0] is source:
            out[-1].text += ch
        else:
            source = frags[0]
            out.append(source.clone(text=ch))
    return line.clone(words=out) if hasattr(line, "clone") else _replace_words(line, out)


def _replace_words(line: Any, words: list[Any]) -> Any:
    new = line.__class__(**line.__dict__)
    new.words = words
    return new


def visual_lines(bl_para: Any, base: int) -> Any:
    """A copy of reportlab's broken-up paragraph with every line in display order."""
    new = bl_para.__class__(**bl_para.__dict__)
    if bl_para.kind == 0:
        new.lines = [(extra, display(" ".join(words), base).split(" ")) for extra, words in bl_para.lines]
    else:
        new.lines = [_visual_frag_line(line, base) for line in bl_para.lines]
    return new
