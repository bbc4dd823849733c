"""Make tests/fonts/: small subsets of free fonts covering exactly the characters the tests write.

The script and emoji tests need fonts that DejaVu (bundled) lacks: Devanagari, Bengali, Tamil, Thai, Chinese,
Japanese, Korean and an emoji. Installing them system-wide made those tests skip wherever they were missing
(CI among them). Subsets of a few kB each, committed with their licences, let every test run everywhere; the
tests point ``EINK_LLM_FONT_DIRS`` at the folder and turn system fonts off (``tests/conftest.py``), so the
results do not depend on what a machine has installed.

Run it after a test starts using new characters (Debian: ``apt-get install fonts-noto-core fonts-droid-fallback
fonts-nanum fonts-symbola``; needs fontTools, which matplotlib brings):

    .venv/bin/python scripts/make_test_fonts.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fonts"

#: (source file, licence of the family) — every font here has TrueType outlines, which reportlab needs.
SOURCES = [
    ("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/noto/NotoSansBengali-Regular.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/noto/NotoSansTamil-Regular.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "Apache-2.0"),
    ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "OFL-1.1"),
    ("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf", "Symbola: free for any use (Debian fonts-symbola)"),
]


def characters_in_tests() -> set[int]:
    """Every non-ASCII character written anywhere in the tests' sources and data."""
    codes: set[int] = set(range(0x20, 0x7F))  # ASCII too: a fallback run may carry the spaces around its letters
    for path in (ROOT / "tests").rglob("*"):
        if path.suffix in {".py", ".md", ".txt", ".json", ".yaml"} and OUT not in path.parents:
            codes |= {ord(ch) for ch in path.read_text(encoding="utf-8", errors="ignore") if ord(ch) > 0x7F}
    return codes


def main() -> int:
    wanted = characters_in_tests()
    OUT.mkdir(exist_ok=True)
    lines = []
    for source, licence in SOURCES:
        src = Path(source)
        if not src.exists():
            print(f"missing {src}: install the Debian packages named in this script's docstring", file=sys.stderr)
            return 1
        font = TTFont(src)
        covered = wanted & set(font.getBestCmap())
        if not covered:
            continue
        options = subset.Options()
        options.layout_features = ["*"]  # keep shaping (GSUB/GPOS) for the kept glyphs
        options.name_IDs = ["*"]
        options.notdef_outline = True
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(covered))
        subsetter.subset(font)
        target = OUT / src.name
        font.save(target)
        lines.append(f"| `{src.name}` | {len(covered)} | {licence} | Debian, `{src}` |")
        print(f"{target.relative_to(ROOT)}: {len(covered)} characters, {target.stat().st_size} bytes")
    readme = OUT / "README.md"
    readme.write_text(
        "# Test fonts\n\nSubsets made by `scripts/make_test_fonts.py` of free fonts, keeping only the characters "
        "the tests use (and the glyphs their shaping needs).\nThe licences: SIL Open Font License 1.1 (Noto, "
        "Nanum: https://openfontlicense.org), Apache License 2.0 (Droid Sans Fallback), and Symbola's own "
        'terms ("fonts in this site are offered free for any use").\n\n'
        "| file | characters | licence | source |\n|---|---|---|---|\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
