"""Per-character font fallback: DejaVu first, then TrueType fonts found on the system.

DejaVu covers Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic and most symbols, but no CJK, Hangul or
emoji. Characters the face in use lacks are set in the first font that has them, from this order:

1. the bundled DejaVu Sans (upright), for the few letters that DejaVu's bold/oblique/mono faces lack;
2. fonts found in ``$EINK_LLM_FONT_DIRS`` (``os.pathsep``-separated), ``~/.fonts``, ``~/.local/share/fonts``,
   ``/usr/local/share/fonts``, ``/usr/share/fonts`` (and the macOS/Windows font folders; all but the first
   are skipped with ``EINK_LLM_NO_SYSTEM_FONTS=1``), best first:
   Noto Sans script fonts, CJK fonts (WenQuanYi, Droid Sans Fallback, Noto Sans CJK in TrueType
   form), symbol and emoji fonts (Noto Sans Symbols, Symbola, monochrome Noto Emoji), then everything else.

reportlab embeds TrueType outlines only, so CFF-flavoured ``.otf``/``.ttc`` files and colour-bitmap emoji
fonts (no ``glyf`` table) are skipped. A font whose licence bits forbid embedding is skipped when reportlab
refuses it.

Costs, once per process: the directory walk (a few ms) happens on the first character DejaVu lacks; a font's
character map is read (a fraction of a millisecond, see :func:`read_cmap`) the first time it is asked about;
reportlab parses and registers a font (~0.1 s for a CJK font) the first time a character is set in it.
Answers in DejaVu's scripts never pay any of it.
"""

from __future__ import annotations

import bisect
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

#: Environment variable with extra font folders, searched first.
FONT_DIRS_ENV = "EINK_LLM_FONT_DIRS"
#: Set to 1 to use only the bundled fonts and $EINK_LLM_FONT_DIRS (reproducible output whatever is installed).
NO_SYSTEM_FONTS_ENV = "EINK_LLM_NO_SYSTEM_FONTS"

#: Name of the bundled DejaVu Sans registered a second time, upright in every style (see module docstring).
UPRIGHT = "DejaVuSansUpright"

# File-name patterns, best first. A font matching none ranks after all of them.
_PREFERRED = tuple(
    re.compile(p)
    for p in (
        r"^notosans-regular\.",
        r"^notosans(hebrew|arabic|armenian|georgian|ethiopic|thai|lao|khmer|devanagari|bengali|tamil)-regular\.",
        r"^notosans[a-z]+-regular\.",
        r"^wqy-zenhei\.",
        r"^wqy-microhei\.",
        r"^droidsansfallbackfull\.",
        r"^droidsansfallback\.",
        r"^notosans(cjk|sc|tc|jp|kr|hk)",
        r"^nanum(gothic|barungothic)",
        r"^notosanssymbols-regular\.",
        r"^notosanssymbols2-regular\.",
        r"^notosansmath-regular\.",
        r"^symbola",
        r"^notoemoji",
        r"^opensansemoji",
        r"^dejavusans\.",
        r"^freesans\.",
        r"^notoserif[a-z]*-regular\.",
        r"^unifont",
    )
)
_DEMOTE = re.compile(r"bold|italic|oblique|light|thin|black|heavy|medium|semi|condensed|narrow|mono|color|colour")
_FONT_SUFFIXES = (".ttf", ".ttc", ".otf")


@dataclass(frozen=True, slots=True)
class FontFile:
    path: Path
    index: int  # subfont in a .ttc; 0 otherwise
    rank: tuple[int, int, str]


def font_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(FONT_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    if os.environ.get(NO_SYSTEM_FONTS_ENV, "").strip() in ("1", "true", "yes"):
        return dirs
    home = Path.home()
    dirs += [home / ".fonts", home / ".local" / "share" / "fonts", Path("/usr/local/share/fonts")]
    dirs += [Path("/usr/share/fonts")]
    if sys.platform == "darwin":
        dirs += [home / "Library" / "Fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts")]
    elif sys.platform == "win32":
        dirs += [Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts"]
    return dirs


def _truetype_subfonts(path: Path) -> list[int]:
    """Indexes of the TrueType-outline fonts in ``path`` (empty for CFF fonts and unreadable files)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
            if head[:4] == b"ttcf":
                count = int.from_bytes(head[8:12], "big")
                offsets = [int.from_bytes(fh.read(4), "big") for _ in range(min(count, 64))]
                found = []
                for n, offset in enumerate(offsets):
                    fh.seek(offset)
                    if fh.read(4) in (b"\x00\x01\x00\x00", b"true"):
                        found.append(n)
                return found
            return [0] if head[:4] in (b"\x00\x01\x00\x00", b"true") else []
    except OSError:
        return []


def _rank(name: str) -> tuple[int, int]:
    lower = name.lower()
    for n, pattern in enumerate(_PREFERRED):
        if pattern.search(lower):
            return n, 1 if _DEMOTE.search(lower.split(".")[0].split("-", 1)[-1]) else 0
    return len(_PREFERRED), 1 if _DEMOTE.search(lower) else 0


def discover(dirs: list[Path] | None = None) -> list[FontFile]:
    """Every TrueType font under ``dirs`` (default :func:`font_dirs`), best fallback candidates first."""
    found: list[FontFile] = []
    seen: set[str] = set()
    for root in dirs if dirs is not None else font_dirs():
        if not root.is_dir():
            continue
        for folder, _, files in os.walk(root, followlinks=True):
            for file in sorted(files):
                if not file.lower().endswith(_FONT_SUFFIXES) or file.lower() in seen:
                    continue
                path = Path(folder) / file
                indexes = _truetype_subfonts(path)
                if indexes:
                    seen.add(file.lower())  # the same font in two folders: the earlier folder wins
                found.extend(FontFile(path, i, (*_rank(file), f"{file}#{i}")) for i in indexes)
    found.sort(key=lambda f: f.rank)
    return found


class Coverage:
    """The code points a font maps to glyphs, as sorted ranges (a CJK font maps ~40,000 of them)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._starts = [lo for lo, _ in merged]
        self._ends = [hi for _, hi in merged]

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, int):
            return False
        i = bisect.bisect_right(self._starts, code) - 1
        return i >= 0 and code <= self._ends[i]

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in zip(self._starts, self._ends, strict=True))


_EMPTY = Coverage([])


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _format4(data: bytes, at: int) -> list[tuple[int, int]]:
    segs = _u16(data, at + 6) // 2
    ends, starts = at + 14, at + 16 + segs * 2
    deltas, offsets = starts + segs * 2, starts + segs * 4
    ranges = []
    for n in range(segs):
        end, start = _u16(data, ends + 2 * n), _u16(data, starts + 2 * n)
        delta, range_offset = _u16(data, deltas + 2 * n), _u16(data, offsets + 2 * n)
        if start > end or start == 0xFFFF:
            continue
        if range_offset == 0:
            ranges.append((start, end))  # glyph = code + delta; glyph 0 only for one code at most
            continue
        base = offsets + 2 * n + range_offset
        glyphs = data[base : base + 2 * (end - start + 1)]
        run_start = None
        for i in range(end - start + 1):
            present = glyphs[2 * i : 2 * i + 2] not in (b"", b"\x00\x00") and (_u16(glyphs, 2 * i) + delta) & 0xFFFF
            if present and run_start is None:
                run_start = start + i
            elif not present and run_start is not None:
                ranges.append((run_start, start + i - 1))
                run_start = None
        if run_start is not None:
            ranges.append((run_start, end))
    return ranges


def _format12(data: bytes, at: int) -> list[tuple[int, int]]:
    groups = _u32(data, at + 12)
    return [(_u32(data, at + 16 + 12 * n), _u32(data, at + 20 + 12 * n)) for n in range(groups)]


def read_cmap(path: Path, index: int = 0) -> Coverage:
    """The characters a TrueType font (or subfont ``index`` of a collection) has; empty if unusable.

    Reads only the table directory and the Unicode ``cmap`` subtable (format 12, else format 4), which takes
    well under a millisecond, so scanning a few hundred system fonts stays cheap. Fonts without ``glyf``
    outlines (CFF, colour bitmaps) count as empty: reportlab cannot embed them.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
            offset = 0
            if head[:4] == b"ttcf":
                fh.seek(12 + 4 * index)
                offset = _u32(fh.read(4), 0)
            fh.seek(offset)
            header = fh.read(12)
            count = _u16(header, 4)
            directory = fh.read(16 * count)
            tables = {directory[16 * n : 16 * n + 4]: directory[16 * n + 8 : 16 * n + 16] for n in range(count)}
            if b"glyf" not in tables or b"cmap" not in tables:
                return _EMPTY
            fh.seek(_u32(tables[b"cmap"], 0))
            data = fh.read(_u32(tables[b"cmap"], 4))
    except (OSError, ValueError):
        return _EMPTY
    try:
        subtables = {}
        for n in range(_u16(data, 2)):
            platform, encoding, at = _u16(data, 4 + 8 * n), _u16(data, 6 + 8 * n), _u32(data, 8 + 8 * n)
            subtables[(platform, encoding, _u16(data, at))] = at
        for key, parse in (((3, 10, 12), _format12), ((0, 4, 12), _format12), ((0, 6, 12), _format12)):
            if key in subtables:
                return Coverage(parse(data, subtables[key]))
        for key in ((3, 1, 4), (0, 3, 4), (0, 1, 4), (0, 0, 4)):
            if key in subtables:
                return Coverage(_format4(data, subtables[key]))
    except (IndexError, ValueError):
        pass
    return _EMPTY


class Fallbacks:
    """Which registered font draws a character the primary face lacks. One instance per process."""

    def __init__(self, dirs: list[Path] | None = None) -> None:
        self._dirs = dirs
        self._lock = threading.RLock()
        self._files: list[FontFile] | None = None
        self._cmaps: dict[FontFile, Coverage] = {}
        self._names: dict[FontFile, str | None] = {}  # registered family name, or None if reportlab refused it
        self._choice: dict[int, str | None] = {}
        self.upright: frozenset[int] | Coverage = frozenset()

    def files(self) -> list[FontFile]:
        with self._lock:
            if self._files is None:
                self._files = discover(self._dirs)
            return self._files

    def font_for(self, code: int) -> str | None:
        """Family name of the first fallback font with ``code``; None when no font on this system has it."""
        cached = self._choice.get(code, "")
        if cached != "":
            return cached
        with self._lock:
            if code in self.upright:
                choice: str | None = UPRIGHT
            else:
                choice = None
                for file in self.files():
                    cmap = self._cmaps.get(file)
                    if cmap is None:
                        cmap = self._cmaps[file] = read_cmap(file.path, file.index)
                    if code in cmap:
                        choice = self._register(file)
                        if choice is not None:
                            break
            self._choice[code] = choice
            return choice

    def _register(self, file: FontFile) -> str | None:
        if file in self._names:
            return self._names[file]
        stem = re.sub(r"[^A-Za-z0-9]+", "", file.path.stem)[:40]
        name = f"Fallback-{stem}-{file.index}"
        try:
            pdfmetrics.registerFont(TTFont(name, str(file.path), subfontIndex=file.index))
        except Exception:
            self._names[file] = None
            return None
        bold = self._bold_sibling(file, name)
        pdfmetrics.registerFontFamily(name, normal=name, bold=bold, italic=name, boldItalic=bold)
        self._names[file] = name
        return name

    @staticmethod
    def _bold_sibling(file: FontFile, name: str) -> str:
        """``NotoSansArabic-Bold.ttf`` next to ``NotoSansArabic-Regular.ttf`` makes bold text bold."""
        if "Regular" not in file.path.name:
            return name
        sibling = file.path.with_name(file.path.name.replace("Regular", "Bold"))
        if not sibling.is_file():
            return name
        try:
            pdfmetrics.registerFont(TTFont(f"{name}-Bold", str(sibling)))
        except Exception:
            return name
        return f"{name}-Bold"
