"""Markdown (as LLMs write it) → reportlab flowables.

markdown-it-py parses with the CommonMark preset plus GFM tables and strikethrough, and with raw HTML
*disabled*: an answer about HTML is full of tags, and they must be shown, not interpreted. Every piece of text
is escaped before it reaches reportlab's paragraph mini-markup, which would otherwise read ``a < b`` as a tag.

What a PDF on e-ink cannot do is replaced by something it can:

* links → underlined text plus a numbered note, with the URLs listed at the end: most tablets cannot follow
  a link from a synced PDF, so the reader needs to see the address, and a URL in the middle of a sentence
  breaks its flow (where the viewer can follow links, the listed web addresses are clickable);
* images → ``[image: alt]`` (the model cannot send us the image anyway);
* task-list checkboxes → ☐ / ☑ as the bullet.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import CondPageBreak, Flowable, Indenter, Paragraph, Spacer, Table, TableStyle
from reportlab.platypus.flowables import HRFlowable

from eink_llm.render import fonts
from eink_llm.render.flowables import SPLIT_IN_ROW, Barred, CodeBlock
from eink_llm.render.styles import BLACK, Theme

# One parser for the process: building one compiles its rule chains, and parse() keeps all its state in a
# per-call object, so sharing it between threads is safe. markdown-it silently drops block content nested
# deeper than maxNesting; see markdown_flowables.
_MAX_NESTING = 64
_MD = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "typographer": False, "maxNesting": _MAX_NESTING}
).enable(["table", "strikethrough"])

_TASK = re.compile(r"^\[([ xX])\](?:\s+|$)")
_BULLETS = ("•", "◦", "▪")
_CLICKABLE = re.compile(r"^(https?|mailto):", re.IGNORECASE)
_INLINE_TAGS = {
    "em_open": "<i>",
    "em_close": "</i>",
    "strong_open": "<b>",
    "strong_close": "</b>",
    "s_open": "<strike>",
    "s_close": "</strike>",
}


def parse(markdown: str) -> list[Token]:
    return list(_MD.parse(markdown))


def code_markup(text: str) -> str:
    """Inline code in the mono font, falling back to sans for letters the mono font lacks."""
    return "".join(f'<font name="{font}">{fonts.escape(run)}</font>' for font, run in fonts.mono_runs(text))


def _plain(token: Token) -> str:
    """The visible text of an inline token, for measuring table columns and image alt text."""
    if not token.children:
        return token.content
    return "".join(c.content if c.type != "image" else f"[image: {_plain(c)}]" for c in token.children)


class Converter:
    """Walks markdown-it's flat token stream once, keeping the nesting context on the Python stack."""

    def __init__(self, theme: Theme, width: float) -> None:
        self.theme = theme
        self.width = width  # width of the body frame, in points
        self.out: list[Flowable] = []
        self.links: dict[str, int] = {}
        self.indent = 0.0  # current left indent, from nested lists and quotes
        self.quote_bars: list[float] = []  # x position (from frame left) of each enclosing quote's bar
        self.list_depth = 0
        self.item_styles: list[ParagraphStyle] = []  # paragraph style of each enclosing list
        self.pending_bullet: str | None = None
        self._aligned: dict[tuple[str, int], ParagraphStyle] = {}

    # -- output helpers -------------------------------------------------------------------------------

    def emit(self, flowable: Flowable) -> None:
        if self.quote_bars:
            offsets = tuple(self.indent - x for x in self.quote_bars)
            flowable = Barred(flowable, offsets, self.theme)
        self.out.append(flowable)

    def nest_step(self, wanted: float) -> float:
        """Indent for one more level of nesting, shrinking so deep nesting never eats the text column.

        On a 7 cm wide screen, ten levels at full indent would leave no room for text at all.
        """
        if self.indent + wanted <= self.width * 0.4:
            return wanted
        if self.indent + self.theme.font_size * 0.8 <= self.width * 0.55:
            return self.theme.font_size * 0.8
        return 0.0

    def push_indent(self, amount: float) -> None:
        self.out.append(Indenter(left=amount))
        self.indent += amount

    def pop_indent(self, amount: float) -> None:
        self.out.append(Indenter(left=-amount))
        self.indent -= amount

    def paragraph(self, markup: str, style: ParagraphStyle) -> None:
        bullet, self.pending_bullet = self.pending_bullet, None
        if bullet is not None:
            self.emit(Paragraph(markup, style, bulletText=bullet))
        else:
            self.emit(Paragraph(markup, style))

    def flush_bullet(self) -> None:
        """A list item that starts with a code block or a nested list still needs its bullet on a line."""
        if self.pending_bullet is not None:
            self.paragraph("", self.item_styles[-1] if self.item_styles else self.theme.styles["tight"])

    # -- inline ----------------------------------------------------------------------------------------

    def inline(self, token: Token) -> str:
        parts: list[str] = []
        link_stack: list[tuple[str, bool]] = []
        for child in token.children or []:
            kind = child.type
            if kind in ("text", "text_special", "html_inline"):
                parts.append(fonts.escape(child.content))
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("<br/>")
            elif kind == "code_inline":
                parts.append(code_markup(child.content))
            elif kind in _INLINE_TAGS:
                parts.append(_INLINE_TAGS[kind])
            elif kind == "link_open":
                href = str(child.attrGet("href") or "")
                noted = bool(href) and child.markup != "autolink" and not href.startswith("#")
                link_stack.append((href, noted))
                parts.append("<u>" if noted else "")
            elif kind == "link_close":
                href, noted = link_stack.pop() if link_stack else ("", False)
                if noted:
                    number = self.links.setdefault(href, len(self.links) + 1)
                    parts.append(f"</u><super>[{number}]</super>")
            elif kind == "image":
                alt = " ".join(_plain(child).split())
                parts.append(f"<i>{fonts.escape(f'[image: {alt}]' if alt else '[image]')}</i>")
            else:  # unknown inline token from a future markdown-it: keep its text
                parts.append(fonts.escape(child.content))
        return "".join(parts)

    # -- blocks ----------------------------------------------------------------------------------------

    def convert(self, tokens: list[Token]) -> list[Flowable]:
        self.blocks(tokens, 0, None)
        if self.links:
            self.out.append(
                HRFlowable(
                    width="100%",
                    thickness=self.theme.line_width,
                    color=self.theme.line_colour,
                    spaceBefore=self.theme.font_size * 0.8,
                    spaceAfter=self.theme.font_size * 0.2,
                )
            )
            self.out.append(Paragraph("Links", self.theme.styles["notes_head"]))
            note = self.theme.styles["note"]
            for href, number in self.links.items():
                shown = fonts.escape(fonts.clean_text(_MD.normalizeLinkText(href)))
                if _CLICKABLE.match(href):
                    shown = f'<a href="{fonts.escape_attr(href)}">{shown}</a>'
                self.out.append(Paragraph(f"[{number}] {shown}", note))
        return self.out

    def blocks(self, tokens: list[Token], i: int, stop: str | None) -> int:
        """Convert tokens from ``i`` until the ``stop`` closing token; return the index after it."""
        styles = self.theme.styles
        while i < len(tokens):
            tok = tokens[i]
            kind = tok.type
            if kind == stop:
                return i + 1
            if kind == "paragraph_open":
                style = self.item_styles[-1] if self.item_styles else styles["body"]
                self.paragraph(self.inline(tokens[i + 1]), style)
                i += 3
            elif kind == "heading_open":
                self.flush_bullet()
                level = min(max(int(tok.tag[1:] or 1), 1), 6)
                style = styles[f"h{level}"]
                # A heading must not end a page. reportlab's keepWithNext would move the whole next
                # paragraph along and leave a quarter page blank; asking for room for the heading and
                # three lines of text after it is what print typesetting does.
                self.out.append(CondPageBreak(style.leading * 2 + style.spaceAfter + 3 * self.theme.leading))
                self.paragraph(self.inline(tokens[i + 1]), style)
                i += 3
            elif kind in ("bullet_list_open", "ordered_list_open"):
                i = self.list_(tokens, i)
            elif kind == "blockquote_open":
                self.flush_bullet()
                step = self.nest_step(self.theme.font_size * 1.2)
                if step:  # past the depth limit, quotes are neither indented nor barred any further
                    self.quote_bars.append(self.indent + step * 0.35)
                self.push_indent(step)
                i = self.blocks(tokens, i + 1, "blockquote_close")
                self.pop_indent(step)
                if step:
                    self.quote_bars.pop()
                self.out.append(Spacer(1, self.theme.font_size * 0.3))
            elif kind in ("fence", "code_block", "html_block"):
                self.flush_bullet()
                block = CodeBlock(fonts.clean_text(tok.content.rstrip("\n")), self.theme)
                block.spaceBefore = self.theme.font_size * 0.2
                block.spaceAfter = self.theme.font_size * 0.8
                self.emit(block)
                i += 1
            elif kind == "hr":
                self.flush_bullet()
                self.emit(
                    HRFlowable(
                        width="100%",
                        thickness=max(self.theme.line_width, 0.8),
                        color=BLACK,
                        spaceBefore=self.theme.font_size * 0.4,
                        spaceAfter=self.theme.font_size * 0.9,
                    )
                )
                i += 1
            elif kind == "table_open":
                self.flush_bullet()
                i = self.table(tokens, i)
            elif kind == "inline":  # stray inline outside a paragraph (not produced by CommonMark, but cheap)
                self.paragraph(self.inline(tok), styles["body"])
                i += 1
            else:  # *_close of something we do not model, or an unknown block token: skip it
                i += 1
        return i

    def list_(self, tokens: list[Token], i: int) -> int:
        self.flush_bullet()
        open_tok = tokens[i]
        ordered = open_tok.type == "ordered_list_open"
        close = "ordered_list_close" if ordered else "bullet_list_close"
        end = i + 1  # index of the matching close token, at the same nesting level
        while end < len(tokens) and not (tokens[end].type == close and tokens[end].level == open_tok.level):
            end += 1
        count = sum(1 for t in tokens[i + 1 : end] if t.type == "list_item_open" and t.level == open_tok.level + 1)
        start = int(open_tok.attrGet("start") or 1) if ordered else 1
        delim = open_tok.markup if ordered and open_tok.markup in (".", ")") else "."
        f = self.theme.font_size
        widest = f"{start + count - 1}{delim}" if ordered else "☐"
        gap = f * 0.65  # >= reportlab's 0.6 em bullet allowance, so the first line is not pushed right
        step = self.nest_step(stringWidth(widest, fonts.SANS, f) + gap + f * 0.3)
        tight = i + 2 < len(tokens) and tokens[i + 2].type == "paragraph_open" and tokens[i + 2].hidden
        self.list_depth += 1
        self.push_indent(step)
        base = self.theme.styles["tight" if tight else "body"]
        self.item_styles.append(ParagraphStyle(f"item{self.list_depth}", parent=base, bulletIndent=-gap))
        number = start
        i += 1
        while i < end:
            if tokens[i].type != "list_item_open" or tokens[i].level != open_tok.level + 1:
                i += 1
                continue
            marker = f"{number}{delim}" if ordered else _BULLETS[(self.list_depth - 1) % len(_BULLETS)]
            number += 1
            self.pending_bullet = self._task_marker(tokens, i) or marker
            i = self.blocks(tokens, i + 1, "list_item_close")
            self.flush_bullet()
        self.pop_indent(step)
        self.item_styles.pop()
        self.list_depth -= 1
        if self.list_depth == 0:
            self.out.append(Spacer(1, f * 0.4))
        return end + 1

    @staticmethod
    def _task_marker(tokens: list[Token], i: int) -> str | None:
        """GFM task items (``- [ ] x``): strip the box from the text and return it as the bullet."""
        if i + 2 >= len(tokens) or tokens[i + 1].type != "paragraph_open":
            return None
        inline = tokens[i + 2]
        first = inline.children[0] if inline.children else None
        match = _TASK.match(inline.content)
        if first is None or first.type != "text" or match is None or not _TASK.match(first.content):
            return None
        first.content = _TASK.sub("", first.content, count=1)
        return "☐" if match.group(1) == " " else "☑"

    # -- tables ----------------------------------------------------------------------------------------

    def table(self, tokens: list[Token], i: int) -> int:
        rows: list[list[tuple[str, str, str]]] = []  # (markup, plain text, align) per cell
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
                rows[-1].append((self.inline(inline), fonts.clean_text(_plain(inline)), align))
            elif tok.type == "thead_close":
                header_rows = len(rows)
            i += 1
        if rows:
            self.emit(self._make_table(rows, header_rows))
        return i + 1

    def _make_table(self, rows: list[list[tuple[str, str, str]]], header_rows: int) -> Flowable:
        t = self.theme
        ncols = max(len(r) for r in rows)
        for r in rows:
            r.extend([("", "", "left")] * (ncols - len(r)))
        avail = self.width - self.indent
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
        if sum(minw) > avail and ncols >= 3:
            return self._stacked_table(rows, header_rows, avail, pad)
        if sum(maxw) <= avail:
            widths = maxw
        elif sum(minw) <= avail:
            spare, stretch = avail - sum(minw), [mx - mn for mn, mx in zip(minw, maxw, strict=True)]
            total = sum(stretch) or 1.0
            widths = [mn + spare * s / total for mn, s in zip(minw, stretch, strict=True)]
        else:  # two columns that still do not fit: long words get split (reportlab's splitLongWords)
            widths = _water_level(minw, avail)
        cell, head = t.cell_styles(size)
        data: list[list[Any]] = []
        for r_index, row in enumerate(rows):
            base = head if r_index < header_rows else cell
            data.append([Paragraph(markup, self._align(base, align)) for markup, _, align in row])
        table = Table(data, colWidths=widths, repeatRows=header_rows, splitInRow=SPLIT_IN_ROW, hAlign="LEFT")
        commands = self._grid_style(pad)
        if header_rows:
            commands.append(("LINEBELOW", (0, header_rows - 1), (-1, header_rows - 1), t.line_width * 2, BLACK))
        table.setStyle(TableStyle(commands))
        table.spaceBefore = t.font_size * 0.2
        table.spaceAfter = t.font_size * 0.8
        return table

    def _stacked_table(
        self, rows: list[list[tuple[str, str, str]]], header_rows: int, avail: float, pad: float
    ) -> Flowable:
        """A table too wide for the screen, as one record per row: "column name | value" pairs.

        On a 7-10 cm wide panel a six-column table would need every word split mid-letter; reading it
        row by row at full size is far easier than deciphering fragments at 7 pt.
        """
        t = self.theme
        head_style = t.styles["cell_head"]
        cell_style = t.styles["cell"]
        names = rows[0] if header_rows else [(f"Column {n + 1}", "", "left") for n in range(len(rows[0]))]
        label_w = max(
            stringWidth(w, fonts.SANS_BOLD, t.font_size) for _, plain, _ in names for w in plain.split() or [""]
        )
        label_w = min(label_w * 1.08 + 2 * pad + 1, avail * 0.4)
        data: list[list[Any]] = []
        commands = self._grid_style(pad)
        for row in rows[header_rows:]:
            if data:
                commands.append(("LINEABOVE", (0, len(data)), (-1, len(data)), t.line_width * 2.5, BLACK))
            for (name, _, _), (markup, _, _) in zip(names, row, strict=True):
                data.append([Paragraph(name, head_style), Paragraph(markup, cell_style)])
        if not data:  # a header and no body rows: show the header as one record
            data = [[Paragraph(name, head_style), Paragraph("", cell_style)] for name, _, _ in names]
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
        self, rows: list[list[tuple[str, str, str]]], header_rows: int, size: float, pad: float
    ) -> tuple[list[float], list[float]]:
        """Per column: the widest unbreakable word, and the widest cell on one line (both padded)."""
        ncols = len(rows[0])
        minw, maxw = [0.0] * ncols, [0.0] * ncols
        slack = 1.08  # bold runs, inline code and superscript link numbers are a little wider than measured
        for r_index, row in enumerate(rows):
            font = fonts.SANS_BOLD if r_index < header_rows else fonts.SANS
            for c, (_, plain, _) in enumerate(row):
                words = plain.split() or [""]
                longest = max(stringWidth(w, font, size) for w in words)
                whole = stringWidth(" ".join(words), font, size)
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


class NestingTooDeep(ValueError):
    """Raised instead of rendering an answer that markdown-it has truncated at its nesting limit."""


def markdown_flowables(markdown: str, theme: Theme, width: float) -> list[Flowable]:
    """The answer body as flowables for a frame ``width`` points wide.

    Raises :class:`NestingTooDeep` when the parse reached markdown-it's nesting limit, because everything
    deeper was dropped without a trace; the caller then shows the answer as plain text, losing nothing.
    """
    tokens = parse(markdown)
    if any(t.level >= _MAX_NESTING - 1 for t in tokens):
        raise NestingTooDeep(f"Markdown nested deeper than {_MAX_NESTING} levels")
    return Converter(theme, width).convert(tokens)
