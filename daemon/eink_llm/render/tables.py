"""GFM tables: column widths from the content, shrinking type, and tables turned sideways or stacked when too wide.

The rule, in order:

1. A table is laid out at its natural width when it fits the text column. Otherwise columns share the room in
   proportion to how much they would like beyond their longest word (cells wrap).
2. If even the longest words do not fit, the type shrinks, half a point at a time, down to a floor of
   ``max(7 pt, 0.7 × body size)``: smaller is not readable on e-ink.
3. A table of three or more columns whose longest words still do not fit is **turned sideways**: laid out
   across the frame's height, drawn rotated 90° counter-clockwise on pages of its own, its rows split across
   as many pages as needed with the header repeated on each (:mod:`eink_llm.render.rotated`). The type
   again starts at full size and shrinks only as far as needed.
4. Only if its longest words do not fit even sideways at the floor size is it **stacked**: one record per
   row, "column name | value" pairs, which reads better than words split mid-letter.

One- and two-column tables are never turned or stacked; a word too long for them is split.
Header rows repeat at the top of every page a table continues on.
"""

from __future__ import annotations

from typing import Any

from markdown_it.token import Token
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, Table, TableStyle

from eink_llm.render import fonts
from eink_llm.render.flowables import SPLIT_IN_ROW
from eink_llm.render.paragraphs import make_paragraph
from eink_llm.render.rotated import WideTable
from eink_llm.render.styles import BLACK, Theme

Cell = tuple[str, str, str]  # (markup, plain text, align)


def plain_text(token: Token) -> str:
    """The visible text of an inline token, for measuring table columns and image alt text."""
    if not token.children:
        return token.content
    parts = []
    for child in token.children:
        if child.type == "image":
            parts.append(f"[image: {plain_text(child)}]")
        elif child.type.startswith("math"):
            parts.append(child.content)
        else:
            parts.append(child.content)
    return "".join(parts)


class TableMixin:
    """Table conversion for :class:`eink_llm.render.markdown.Converter`."""

    theme: Theme
    width: float
    indent: float
    _aligned: dict[tuple[str, int], ParagraphStyle]

    def emit(self, flowable: Flowable) -> None:
        raise NotImplementedError

    def inline(self, token: Token, face: str = fonts.SANS, size: float | None = None) -> str:
        raise NotImplementedError

    def table(self, tokens: list[Token], i: int) -> int:
        rows: list[list[Cell]] = []  # (markup, plain text, align) per cell
        header_rows = 0
        i += 1
        while i < len(tokens) and tokens[i].type != "table_close":
            tok = tokens[i]
            if tok.type == "tr_open":
                rows.append([])
            elif tok.type in ("th_open", "td_open") and rows:
                style = str(tok.attrGet("style") or "")
                align = style.split(":", 1)[1].strip() if ":" in style else "left"
                inline = tokens[i + 1]
                face = fonts.SANS_BOLD if tok.type == "th_open" else fonts.SANS
                rows[-1].append((self.inline(inline, face), fonts.clean_text(plain_text(inline)), align))
            elif tok.type == "thead_close":
                header_rows = len(rows)
            i += 1
        if rows:
            self.emit(self._make_table(rows, header_rows))
        return i + 1

    def _make_table(self, rows: list[list[Cell]], header_rows: int) -> Flowable:
        ncols = max(len(r) for r in rows)
        for r in rows:
            r.extend([("", "", "left")] * (ncols - len(r)))
        avail = self.width - self.indent
        table = self._fitted_table(rows, header_rows, avail, force=ncols < 3)
        if table is not None:
            return table
        # Too wide even in the smallest legible type: turned sideways on pages of its own if it fits that
        # way, else stacked. Which one depends on the frame's height, known only at layout time.
        pad = self.theme.font_size * 0.3
        wide = WideTable(
            lambda height: self._fitted_table(rows, header_rows, height, spaced=False),
            lambda width: self._stacked_table(rows, header_rows, width, pad),
            slack=self.theme.font_size * 1.5,
        )
        wide.spaceBefore = self.theme.font_size * 0.2
        wide.spaceAfter = self.theme.font_size * 0.8
        return wide

    def _fitted_table(
        self, rows: list[list[Cell]], header_rows: int, avail: float, *, force: bool = False, spaced: bool = True
    ) -> Table | None:
        """The table laid out ``avail`` points wide, its type shrunk as far as needed; None if it cannot fit.

        With ``force`` a table whose longest words do not fit even at the smallest size is laid out anyway,
        with those words split.
        """
        t = self.theme
        ncols = len(rows[0])
        pad = t.font_size * 0.3
        size = t.font_size
        floor = max(7.0, t.font_size * 0.7)
        # Shrink the type until the longest word of every column fits, down to a floor: smaller type would
        # not be readable on e-ink.
        while True:
            minw, maxw = self._column_extents(rows, header_rows, size, pad)
            if sum(minw) <= avail or size <= floor:
                break
            size = max(floor, size - 0.5)
        if sum(maxw) <= avail:
            widths = maxw
        elif sum(minw) <= avail:
            spare, stretch = avail - sum(minw), [mx - mn for mn, mx in zip(minw, maxw, strict=True)]
            total = sum(stretch) or 1.0
            widths = [mn + spare * s / total for mn, s in zip(minw, stretch, strict=True)]
        elif force:  # one or two columns that still do not fit: long words get split (reportlab's splitLongWords)
            widths = _water_level(minw, avail)
        else:
            return None
        cell, head = t.cell_styles(size)
        commands = self._grid_style(pad)
        # Fast path: cells of plain text that fit on one line are strings, which reportlab draws without
        # laying out a Paragraph per cell (a quarter of the time of a typical answer with small tables).
        if sum(maxw) <= avail and all(m == fonts.escape(p) for row in rows for m, p, _ in row):
            data: list[list[Any]] = [[plain for _, plain, _ in row] for row in rows]
            commands.append(("FONT", (0, 0), (-1, -1), cell.fontName, cell.fontSize, cell.leading))
            commands.append(("TEXTCOLOR", (0, 0), (-1, -1), BLACK))
            if header_rows:
                commands.append(("FONT", (0, 0), (-1, header_rows - 1), head.fontName, head.fontSize, head.leading))
            for c in range(ncols):
                for r_index, row in enumerate(rows):
                    if row[c][2] in ("right", "center"):
                        commands.append(("ALIGN", (c, r_index), (c, r_index), row[c][2].upper()))
        else:
            data = []
            for r_index, row in enumerate(rows):
                base = head if r_index < header_rows else cell
                data.append([make_paragraph(m, self._align(base, align), plain=plain) for m, plain, align in row])
        table = Table(data, colWidths=widths, repeatRows=header_rows, splitInRow=SPLIT_IN_ROW, hAlign="LEFT")
        if header_rows:
            commands.append(("LINEBELOW", (0, header_rows - 1), (-1, header_rows - 1), t.line_width * 2, BLACK))
        table.setStyle(TableStyle(commands))
        if spaced:
            table.spaceBefore = t.font_size * 0.2
            table.spaceAfter = t.font_size * 0.8
        return table

    def _stacked_table(self, rows: list[list[Cell]], header_rows: int, avail: float, pad: float) -> Table:
        """A table too wide for the screen, as one record per row: "column name | value" pairs.

        On a 7-10 cm wide panel a six-column table would need every word split mid-letter; reading it
        row by row at full size is far easier than deciphering fragments at 7 pt.
        """
        t = self.theme
        head_style = t.styles["cell_head"]
        cell_style = t.styles["cell"]
        names = rows[0] if header_rows else [(f"Column {n + 1}", "", "left") for n in range(len(rows[0]))]
        label_w = max(
            fonts.text_width(w, fonts.SANS_BOLD, t.font_size) for _, plain, _ in names for w in plain.split() or [""]
        )
        label_w = min(label_w * 1.08 + 2 * pad + 1, avail * 0.4)
        data: list[list[Any]] = []
        commands = self._grid_style(pad)
        for row in rows[header_rows:]:
            if data:
                commands.append(("LINEABOVE", (0, len(data)), (-1, len(data)), t.line_width * 2.5, BLACK))
            for (name, name_plain, _), (markup, plain, _) in zip(names, row, strict=True):
                data.append(
                    [
                        make_paragraph(name, head_style, plain=name_plain),
                        make_paragraph(markup, cell_style, plain=plain),
                    ]
                )
        if not data:  # a header and no body rows: show the header as one record
            data = [
                [make_paragraph(name, head_style, plain=plain), make_paragraph("", cell_style)]
                for name, plain, _ in names
            ]
        table = Table(data, colWidths=[label_w, avail - label_w], splitInRow=SPLIT_IN_ROW, hAlign="LEFT")
        table.setStyle(TableStyle(commands))
        table.spaceBefore = t.font_size * 0.2
        table.spaceAfter = t.font_size * 0.8
        return table

    def _grid_style(self, pad: float) -> list[tuple[Any, ...]]:
        t = self.theme
        return [
            ("GRID", (0, 0), (-1, -1), t.line_width, t.line_colour),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), pad),
            ("RIGHTPADDING", (0, 0), (-1, -1), pad),
            ("TOPPADDING", (0, 0), (-1, -1), pad * 0.6),
            ("BOTTOMPADDING", (0, 0), (-1, -1), pad * 0.9),
        ]

    def _column_extents(
        self, rows: list[list[Cell]], header_rows: int, size: float, pad: float
    ) -> tuple[list[float], list[float]]:
        """Per column: the widest unbreakable word, and the widest cell on one line (both padded)."""
        ncols = len(rows[0])
        minw, maxw = [0.0] * ncols, [0.0] * ncols
        slack = 1.08  # bold runs, inline code and superscript link numbers are a little wider than measured
        for r_index, row in enumerate(rows):
            font = fonts.SANS_BOLD if r_index < header_rows else fonts.SANS
            for c, (_, plain, _) in enumerate(row):
                words = plain.split() or [""]
                longest = max(fonts.text_width(w, font, size) for w in words)
                whole = fonts.text_width(" ".join(words), font, size)
                minw[c] = max(minw[c], longest * slack + 2 * pad + 1)
                maxw[c] = max(maxw[c], whole * slack + 2 * pad + 1)
        return minw, maxw

    def _align(self, base: ParagraphStyle, align: str) -> ParagraphStyle:
        if align not in ("right", "center"):
            return base
        key = (base.name, TA_RIGHT if align == "right" else TA_CENTER)
        if key not in self._aligned:
            self._aligned[key] = ParagraphStyle(f"{base.name}-{align}", parent=base, alignment=key[1])
        return self._aligned[key]


def _water_level(widths: list[float], total: float) -> list[float]:
    """Cut the widest columns down to a common width until all fit in ``total``.

    Narrow columns (numbers, "yes"/"no") keep their natural width and the words that must be split are
    the long ones, rather than every column giving up the same share and "x" wrapping mid-letter.
    """
    ordered = sorted(widths)
    remaining, count = total, len(ordered)
    for w in ordered:
        level = remaining / count
        if w > level:
            return [min(x, level) for x in widths]
        remaining -= w
        count -= 1
    return list(widths)
