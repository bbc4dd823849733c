"""Type sizes, spacing and greys, derived from one body size so that ``font_size`` scales everything.

E-ink panels show 16 grey levels at best and colour panels dither grey into mush, so the palette is
black text on white, with one mid grey for rules and the running header only on monochrome panels.
Generous leading (1.4x) matters more on e-ink than on paper: the panels' slight ghosting of the previous
page makes tight lines harder to track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle

from eink_llm.errors import RenderError
from eink_llm.render import fonts
from eink_llm.render.devices import Device

BLACK = colors.Color(0, 0, 0)
WHITE = colors.Color(1, 1, 1)

MIN_FONT_SIZE = 6.0
MAX_FONT_SIZE = 36.0


def grey(level: float) -> colors.Color:
    """A neutral grey (0 black … 1 white); equal channels keep the page free of colour casts."""
    return colors.Color(level, level, level)


def check_font_size(font_size: float) -> float:
    """Refuse sizes that cannot make a readable page instead of producing one that silently is not."""
    if not isinstance(font_size, int | float) or not math.isfinite(font_size):
        raise RenderError(
            "The font size for answers is not a number.",
            "Set output.font_size in the configuration to a number such as 11.",
            detail=f"font_size={font_size!r}",
        )
    if not MIN_FONT_SIZE <= font_size <= MAX_FONT_SIZE:
        raise RenderError(
            f"The font size {font_size:g} pt is outside what fits on a page.",
            f"Set output.font_size between {MIN_FONT_SIZE:g} and {MAX_FONT_SIZE:g}; 11 to 13 reads well on e-ink.",
        )
    return float(font_size)


@dataclass(frozen=True)
class Theme:
    """Every measurement the layout uses, for one device and body size (points)."""

    font_size: float
    colour_panel: bool
    leading: float = field(init=False)
    code_size: float = field(init=False)
    small_size: float = field(init=False)
    line_width: float = field(init=False)
    line_colour: colors.Color = field(init=False)
    muted: colors.Color = field(init=False)
    styles: dict[str, ParagraphStyle] = field(init=False)

    def __post_init__(self) -> None:
        f = self.font_size
        set_ = object.__setattr__
        set_(self, "leading", round(f * 1.4, 2))
        # Code is set slightly smaller so typical 70-80 column lines fit on a 10" panel, but never below 8 pt.
        set_(self, "code_size", max(8.0, round(f * 0.88, 2)))
        set_(self, "small_size", max(7.0, round(f * 0.72, 2)))
        # Colour panels: no hairlines, no grey (see Device.colour).
        set_(self, "line_width", 1.0 if self.colour_panel else 0.6)
        set_(self, "line_colour", BLACK if self.colour_panel else grey(0.4))
        set_(self, "muted", BLACK if self.colour_panel else grey(0.25))
        set_(self, "styles", self._make_styles())

    def _make_styles(self) -> dict[str, ParagraphStyle]:
        f, lead = self.font_size, self.leading
        body = ParagraphStyle(
            "body",
            fontName=fonts.SANS,
            fontSize=f,
            leading=lead,
            textColor=BLACK,
            alignment=TA_LEFT,
            spaceBefore=0,
            spaceAfter=f * 0.6,
            bulletFontName=fonts.SANS,
            bulletFontSize=f,
            bulletAnchor="end",
            splitLongWords=1,
            allowWidows=0,
            allowOrphans=0,
        )
        s: dict[str, ParagraphStyle] = {"body": body}
        for level, scale in ((1, 1.55), (2, 1.32), (3, 1.15), (4, 1.0), (5, 1.0), (6, 1.0)):
            size = round(f * scale, 2)
            s[f"h{level}"] = ParagraphStyle(
                f"h{level}",
                parent=body,
                fontName=fonts.SANS_ITALIC if level == 6 else fonts.SANS_BOLD,
                fontSize=size,
                leading=round(size * 1.25, 2),
                spaceBefore=f * (1.1 if level <= 2 else 0.8),
                spaceAfter=f * 0.45,
            )
        s["tight"] = ParagraphStyle("tight", parent=body, spaceAfter=f * 0.25)
        s["cell"] = ParagraphStyle("cell", parent=body, spaceAfter=0, leading=round(f * 1.25, 2))
        s["cell_head"] = ParagraphStyle("cell_head", parent=s["cell"], fontName=fonts.SANS_BOLD)
        s["note"] = ParagraphStyle("note", parent=body, fontSize=round(f * 0.9, 2), leading=round(f * 1.25, 2))
        s["notes_head"] = ParagraphStyle("notes_head", parent=s["h4"], spaceBefore=f * 0.6)
        s["asked_label"] = ParagraphStyle("asked_label", parent=body, fontName=fonts.SANS_BOLD, spaceAfter=f * 0.2)
        s["asked"] = ParagraphStyle("asked", parent=body, fontName=fonts.SANS_ITALIC, spaceAfter=0)
        s["error_title"] = ParagraphStyle("error_title", parent=s["h1"], spaceBefore=0)
        return s

    def cell_styles(self, size: float) -> tuple[ParagraphStyle, ParagraphStyle]:
        """Body and header cell styles at ``size``, for tables that must shrink to fit the page width."""
        if size == self.font_size:
            return self.styles["cell"], self.styles["cell_head"]
        lead = round(size * 1.25, 2)
        cell = ParagraphStyle(f"cell{size}", parent=self.styles["cell"], fontSize=size, leading=lead)
        head = ParagraphStyle(f"cell_head{size}", parent=cell, fontName=fonts.SANS_BOLD)
        return cell, head


def make_theme(device: Device, font_size: float) -> Theme:
    return Theme(check_font_size(font_size), bool(device.colour))
