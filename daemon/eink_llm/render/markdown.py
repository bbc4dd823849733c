"""Markdown (as LLMs write it) → reportlab flowables.

markdown-it-py parses with the CommonMark preset plus GFM tables and strikethrough, and with raw HTML
*disabled*: an answer about HTML is full of tags, and they must be shown, not interpreted. Every piece of text
is escaped before it reaches reportlab's paragraph mini-markup, which would otherwise read ``a < b`` as a tag.

What a PDF on e-ink cannot do is replaced by something it can:

* links → underlined text plus a numbered note, with the URLs listed at the end: most tablets cannot follow
  a link from a synced PDF, so the reader needs to see the address, and a URL in the middle of a sentence
  breaks its flow (where the viewer can follow links, the listed web addresses are clickable);
* images → ``[image: alt]`` (the model cannot send us the image anyway);
* task-list checkboxes → ☐ / ☑ as the bullet;
* TeX math (:mod:`eink_llm.render.mathsyntax`) → vector formulas (:mod:`eink_llm.render.formulas`), or the
  TeX source in monospace where a formula cannot be drawn;
* ```svg and ```plot blocks → vector drawings (:mod:`eink_llm.render.drawings`), or their source under a
  one-line note where a drawing cannot be made.

Headings become PDF outline entries (bookmarks). Text in scripts DejaVu lacks is set in system fallback fonts,
Arabic is shaped and right-to-left text reordered (see :mod:`eink_llm.render.paragraphs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import CondPageBreak, Flowable, Indenter, Paragraph, Spacer
from reportlab.platypus.flowables import HRFlowable

from eink_llm.errors import DrawingRefused
from eink_llm.render import drawings, fonts, formulas
from eink_llm.render.bidi import shape_arabic
from eink_llm.render.flowables import Barred, CodeBlock
from eink_llm.render.mathblocks import MathBlock, inline_markup
from eink_llm.render.mathsyntax import math_plugin, source_text
from eink_llm.render.paragraphs import make_paragraph
from eink_llm.render.styles import BLACK, Theme
from eink_llm.render.tables import TableMixin, plain_text

# One parser for the process: building one compiles its rule chains, and parse() keeps all its state in a
# per-call object, so sharing it between threads is safe. markdown-it silently drops block content nested
# deeper than maxNesting; see markdown_flowables.
_MAX_NESTING = 64
_MD = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "typographer": False, "maxNesting": _MAX_NESTING}
).enable(["table", "strikethrough"])
_MD.use(math_plugin)

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


@dataclass
class Stats:
    """What a conversion did that the caller may want to report or test."""

    formulas: int = 0  # drawn as vector formulas
    formulas_as_source: list[str] = field(default_factory=list)  # shown as TeX source instead
    headings: int = 0
    drawings: int = 0  # ```svg / ```plot blocks drawn as vectors
    drawings_as_source: list[str] = field(default_factory=list)  # why each other one is shown as source
    links: int = 0  # distinct addresses listed under "Links" (or shown inline)


@dataclass(frozen=True, slots=True)
class _Display:
    """A displayed formula met inside a paragraph's inline content."""

    tex: str
    markup: str


def parse(markdown: str) -> list[Token]:
    return list(_MD.parse(markdown))


def code_markup(text: str) -> str:
    """Inline code in the mono font, falling back to sans (and system fonts) for letters the mono font lacks."""
    return fonts.markup(shape_arabic(text), fonts.MONO, tag_all=True)


def text_markup(text: str, face: str = fonts.SANS) -> str:
    """Running text as paragraph markup: shaped, escaped, with fallback fonts where ``face`` lacks letters."""
    return fonts.markup(shape_arabic(text), face)


class Converter(TableMixin):
    """Walks markdown-it's flat token stream once, keeping the nesting context on the Python stack."""

    def __init__(self, theme: Theme, width: float, height: float | None = None, *, inline_links: bool = False) -> None:
        self.theme = theme
        self.width = width  # width of the body frame, in points
        self.height = height if height is not None else width * 1.3  # of the body frame: drawings fit in it
        #: Addresses in brackets after the link text instead of a list at the end (see api._render).
        self.inline_links = inline_links
        self.out: list[Flowable] = []
        self.links: dict[str, int] = {}
        self.indent = 0.0  # current left indent, from nested lists and quotes
        self.quote_bars: list[float] = []  # x position (from frame left) of each enclosing quote's bar
        self.list_depth = 0
        self.item_styles: list[ParagraphStyle] = []  # paragraph style of each enclosing list
        self.pending_bullet: str | None = None
        self._aligned: dict[tuple[str, int], ParagraphStyle] = {}
        self.stats = Stats()
        self.outline_level = -1

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

    def paragraph(self, markup: str, style: ParagraphStyle, plain: str = "", outline: int | None = None) -> None:
        bullet, self.pending_bullet = self.pending_bullet, None
        self.emit(make_paragraph(markup, style, bullet, plain=plain, outline=outline))

    def rich_paragraph(self, token: Token, style: ParagraphStyle) -> None:
        """A paragraph's inline content; displayed formulas in it split it into paragraph, formula, paragraph."""
        pieces = self.inline_pieces(token, style.fontName, float(style.fontSize))
        plain = plain_text(token)
        if all(isinstance(p, str) for p in pieces):
            self.paragraph("".join(p for p in pieces if isinstance(p, str)), style, plain)
            return
        current: list[str] = []
        for piece in [*pieces, None]:
            if isinstance(piece, str):
                current.append(piece)
                continue
            text = "".join(current).strip()
            while text.startswith("<br/>") or text.endswith("<br/>"):
                text = text.removeprefix("<br/>").removesuffix("<br/>").strip()
            if text or (piece is None and self.pending_bullet is not None):
                self.paragraph(text, style, plain)
            current = []
            if isinstance(piece, _Display):
                self.display_math(piece.tex, piece.markup)

    def flush_bullet(self) -> None:
        """A list item that starts with a code block or a nested list still needs its bullet on a line."""
        if self.pending_bullet is not None:
            self.paragraph("", self.item_styles[-1] if self.item_styles else self.theme.styles["tight"])

    # -- inline ----------------------------------------------------------------------------------------

    def inline(self, token: Token, face: str = fonts.SANS, size: float | None = None) -> str:
        """Inline content as one piece of markup (displayed formulas are set inline)."""
        pieces = self.inline_pieces(token, face, size or self.theme.font_size, display_inline=True)
        return "".join(p for p in pieces if isinstance(p, str))

    def inline_math(self, tex: str, markup: str, size: float, *, display: bool = False) -> str:
        drawn = inline_markup(tex, size * (1.1 if display else 1.0))
        if drawn is None:
            self.stats.formulas_as_source.append(tex)
            return code_markup(source_text(tex, markup))
        self.stats.formulas += 1
        return drawn

    def display_math(self, tex: str, markup: str) -> None:
        self.flush_bullet()
        rows = formulas.formulas(tex, display=True)
        if rows is None:
            self.stats.formulas_as_source.append(tex)
            block = CodeBlock(fonts.clean_text(source_text(tex, markup)), self.theme)
            block.spaceBefore, block.spaceAfter = self.theme.font_size * 0.2, self.theme.font_size * 0.8
            self.emit(block)
        else:
            self.stats.formulas += 1
            self.emit(MathBlock(rows, self.theme, tex))

    def drawing(self, language: str, source: str) -> None:
        """A ```svg or ```plot block as a drawing, or as its source under a one-line note saying why not."""
        try:
            if self.stats.drawings >= drawings.MAX_DRAWINGS:
                raise DrawingRefused(f"an answer shows at most {drawings.MAX_DRAWINGS} drawings")
            picture = drawings.picture(language, source, self.theme)
        except DrawingRefused as refused:
            self.stats.drawings_as_source.append(refused.reason)
            note = f"Drawing shown as source: {refused.reason}."
            self.emit(make_paragraph(f"<i>{text_markup(note)}</i>", self.theme.styles["note"], plain=note))
            block = CodeBlock(fonts.clean_text(drawings.shown_source(source)), self.theme)
            block.spaceBefore, block.spaceAfter = self.theme.font_size * 0.1, self.theme.font_size * 0.8
            self.emit(block)
            return
        self.stats.drawings += 1
        # room for the block's spacing and a quote bar's indent within one page
        self.emit(drawings.DrawingBlock(picture, source, self.theme, self.height - self.theme.font_size * 1.5))

    def inline_pieces(
        self, token: Token, face: str, size: float, *, display_inline: bool = False
    ) -> list[str | _Display]:
        """Markup pieces of inline content set in ``face`` at ``size`` pt; displayed formulas kept apart."""
        parts: list[str | _Display] = []
        link_stack: list[tuple[str, bool]] = []
        base_mono, base_bold, base_italic = fonts.STYLE_OF.get(face, (False, False, False))
        bold, italic = int(base_bold), int(base_italic)
        for child in token.children or []:
            kind = child.type
            if kind in ("text", "text_special", "html_inline"):
                parts.append(text_markup(child.content, fonts.FACES[(base_mono, bold > 0, italic > 0)]))
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append("<br/>")
            elif kind == "code_inline":
                parts.append(code_markup(child.content))
            elif kind == "math_inline":
                parts.append(self.inline_math(child.content, child.markup, size))
            elif kind == "math_display":
                if display_inline:
                    parts.append(self.inline_math(child.content, child.markup, size, display=True))
                else:
                    parts.append(_Display(child.content, child.markup))
            elif kind in _INLINE_TAGS:
                bold += {"strong_open": 1, "strong_close": -1}.get(kind, 0)
                italic += {"em_open": 1, "em_close": -1}.get(kind, 0)
                parts.append(_INLINE_TAGS[kind])
            elif kind == "link_open":
                href = str(child.attrGet("href") or "")
                noted = bool(href) and child.markup != "autolink" and not href.startswith("#")
                link_stack.append((href, noted))
                parts.append("<u>" if noted else "")
            elif kind == "link_close":
                href, noted = link_stack.pop() if link_stack else ("", False)
                if noted and self.inline_links:
                    self.links.setdefault(href, len(self.links) + 1)
                    self.stats.links = len(self.links)
                    shown = text_markup(fonts.clean_text(_MD.normalizeLinkText(href)))
                    parts.append(f"</u> <font size={self.theme.font_size * 0.85:.1f}>({shown})</font>")
                elif noted:
                    number = self.links.setdefault(href, len(self.links) + 1)
                    self.stats.links = len(self.links)
                    parts.append(f"</u><super>[{number}]</super>")
            elif kind == "image":
                alt = " ".join(plain_text(child).split())
                face = fonts.FACES[(base_mono, bold > 0, True)]
                parts.append(f"<i>{text_markup(f'[image: {alt}]' if alt else '[image]', face)}</i>")
            else:  # unknown inline token from a future markdown-it: keep its text
                parts.append(text_markup(child.content))
        return parts

    # -- blocks ----------------------------------------------------------------------------------------

    def convert(self, tokens: list[Token]) -> list[Flowable]:
        self.blocks(tokens, 0, None)
        if self.links and not self.inline_links:
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
                shown = text_markup(fonts.clean_text(_MD.normalizeLinkText(href)))
                if _CLICKABLE.match(href):
                    shown = f'<a href="{fonts.escape_attr(href)}">{shown}</a>'
                self.out.append(make_paragraph(f"[{number}] {shown}", note))
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
                self.rich_paragraph(tokens[i + 1], style)
                i += 3
            elif kind == "heading_open":
                self.flush_bullet()
                level = min(max(int(tok.tag[1:] or 1), 1), 6)
                style = styles[f"h{level}"]
                # A heading must not end a page. reportlab's keepWithNext would move the whole next
                # paragraph along and leave a quarter page blank; asking for room for the heading and
                # three lines of text after it is what print typesetting does.
                self.out.append(CondPageBreak(style.leading * 2 + style.spaceAfter + 3 * self.theme.leading))
                # Outline levels may not skip (a "###" right under "#" becomes level 1, not 2).
                self.outline_level = min(level - 1, self.outline_level + 1)
                self.stats.headings += 1
                markup = self.inline(tokens[i + 1], style.fontName, style.fontSize)
                self.paragraph(markup, style, plain_text(tokens[i + 1]), outline=self.outline_level)
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
            elif kind == "math_block":
                self.display_math(tok.content, tok.markup)
                i += 1
            elif kind == "fence" and tok.info.strip().lower() in drawings.LANGUAGES:
                self.flush_bullet()
                self.drawing(tok.info.strip().lower(), tok.content)
                i += 1
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
                self.rich_paragraph(tok, styles["body"])
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
        step = self.nest_step(fonts.text_width(widest, fonts.SANS, f) + gap + f * 0.3)
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


class NestingTooDeep(ValueError):
    """Raised instead of rendering an answer that markdown-it has truncated at its nesting limit."""


def markdown_flowables(
    markdown: str,
    theme: Theme,
    width: float,
    stats: Stats | None = None,
    height: float | None = None,
    *,
    inline_links: bool = False,
) -> list[Flowable]:
    """The answer body as flowables for a frame ``width`` (and ``height``) points; ``stats`` (if given) is filled.

    Raises :class:`NestingTooDeep` when the parse reached markdown-it's nesting limit, because everything
    deeper was dropped without a trace; the caller then shows the answer as plain text, losing nothing.
    """
    tokens = parse(markdown)
    if any(t.level >= _MAX_NESTING - 1 for t in tokens):
        raise NestingTooDeep(f"Markdown nested deeper than {_MAX_NESTING} levels")
    converter = Converter(theme, width, height, inline_links=inline_links)
    if stats is not None:
        converter.stats = stats
    return converter.convert(tokens)
