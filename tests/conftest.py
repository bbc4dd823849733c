"""Test-wide setup: the fonts the tests render with come from the repository, not from the machine.

``tests/fonts/`` holds small subsets (made by ``scripts/make_test_fonts.py``) of free fonts for the scripts and
the emoji the tests write; with system fonts turned off, every machine renders the same and no script test
skips for want of a font. Set before any test module imports the renderer (its font list is read once).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["EINK_LLM_FONT_DIRS"] = str(Path(__file__).resolve().parent / "fonts")
os.environ["EINK_LLM_NO_SYSTEM_FONTS"] = "1"
