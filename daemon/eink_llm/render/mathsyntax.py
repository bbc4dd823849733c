"""TeX math in Markdown: ``$…$`` and ``\\(…\\)`` inline, ``$$…$$`` and ``\\[…\\]`` displayed (markdown-it rules).

The dollar rules are pandoc's, so prices are not mistaken for formulas: the opening ``$`` must have a
non-space character right after it, the closing ``$`` a non-space character right before it and no digit
right after it. ``$5 and $10`` is therefore text, ``$x$`` and ``$a+b$`` are math; ``\\$`` is a literal dollar.
Code spans and code blocks are parsed before math can see them, so math inside code stays code.

Tokens produced:

* ``math_inline`` (inline, ``content`` = TeX source) for ``$…$`` and ``\\(…\\)``;
* ``math_display`` (inline, within a paragraph) for ``$$…$$`` and ``\\[…\\]`` in running text;
* ``math_block`` (block) for ``$$``/``\\[`` opening a line and the matching close ending a later (or the same) line.

Every token keeps the delimiters it was written with in ``markup`` so the source can be shown as written when
the formula cannot be drawn.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline

_PAIRS = {"\\(": "\\)", "\\[": "\\]"}


def _skip_code_span(src: str, pos: int) -> int:
    """If a code span starts at ``pos`` (a backtick), the index after it; else ``pos + 1``."""
    run = pos
    while run < len(src) and src[run] == "`":
        run += 1
    ticks = src[pos:run]
    close = src.find(ticks, run)
    while close != -1 and close + len(ticks) < len(src) and src[close + len(ticks)] == "`":
        close = src.find(ticks, close + len(ticks) + 1)
    return close + len(ticks) if close != -1 else run


def _find_dollar_close(src: str, start: int, end: int) -> int:
    """Index of the closing ``$`` of an inline formula whose content starts at ``start``, or -1."""
    pos = start
    while pos < end:
        ch = src[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == "`":
            pos = _skip_code_span(src, pos)
            continue
        if ch == "$":
            after = src[pos + 1] if pos + 1 < end else ""
            if pos > start and not src[pos - 1].isspace() and not after.isdigit() and after != "$":
                return pos
            if after == "$":  # "$$" never closes an inline formula
                return -1
        if ch == "\n" and pos + 1 < end and src[pos + 1] == "\n":
            return -1
        pos += 1
    return -1


def _math_inline(state: StateInline, silent: bool) -> bool:
    src, pos, end = state.src, state.pos, state.posMax
    opener = src[pos : pos + 2]
    if opener in _PAIRS:
        close = src.find(_PAIRS[opener], pos + 2, end)
        if close == -1 or not src[pos + 2 : close].strip():
            return False
        kind, content, markup, after = (
            ("math_inline" if opener == "\\(" else "math_display"),
            src[pos + 2 : close],
            opener,
            close + 2,
        )
    elif opener == "$$":
        close = src.find("$$", pos + 2, end)
        if close == -1 or not src[pos + 2 : close].strip():
            return False
        kind, content, markup, after = "math_display", src[pos + 2 : close], "$$", close + 2
    elif src[pos] == "$":
        if pos + 1 >= end or src[pos + 1].isspace():
            return False
        close = _find_dollar_close(src, pos + 1, end)
        if close == -1:
            return False
        kind, content, markup, after = "math_inline", src[pos + 1 : close], "$", close + 1
    else:
        return False
    if not silent:
        token = state.push(kind, "math", 0)
        token.content = content.strip()
        token.markup = markup
    state.pos = after
    return True


def _math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    begin = state.bMarks[start_line] + state.tShift[start_line]
    line_end = state.eMarks[start_line]
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    first = state.src[begin:line_end]
    if first.startswith("$$"):
        opener, closer = "$$", "$$"
    elif first.startswith("\\["):
        opener, closer = "\\[", "\\]"
    else:
        return False
    rest = first[2:].rstrip()
    lines = []
    line = start_line
    if rest.endswith(closer) and len(rest) >= len(closer):
        lines.append(rest[: -len(closer)])
    else:
        if closer in rest:  # "$$a$$ and more": a display formula inside a paragraph, not a block
            return False
        lines.append(rest)
        while True:
            line += 1
            if line >= end_line:
                return False
            text = state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
            if state.sCount[line] < state.blkIndent and text.strip():
                return False  # the list item or quote ended before the formula did
            stripped = text.rstrip()
            if stripped.endswith(closer):
                lines.append(stripped[: -len(closer)])
                break
            if closer in stripped:
                return False
            lines.append(text)
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = "\n".join(lines).strip()
    token.markup = opener
    token.map = [start_line, line + 1]
    state.line = line + 1
    return True


def math_plugin(md: MarkdownIt) -> None:
    """Add the math rules to a parser (before backslash escapes, which would eat ``\\(``)."""
    md.inline.ruler.before("escape", "math_inline", _math_inline)
    md.block.ruler.before("fence", "math_block", _math_block, {"alt": ["paragraph", "reference", "blockquote", "list"]})


def source_text(content: str, markup: str) -> str:
    """The formula as the model wrote it, delimiters included, for showing when it cannot be drawn."""
    closer = _PAIRS.get(markup, markup)
    return f"{markup}{content}{closer}"
