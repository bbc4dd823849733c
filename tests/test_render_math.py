"""TeX math: which text is math (parser rules, no matplotlib needed), and how formulas end up on the page."""

from __future__ import annotations

import re

import pytest

from eink_llm.render import formulas
from eink_llm.render.api import render
from eink_llm.render.markdown import parse
from tests.test_render import META, pdf_text, squash

HAVE_MATPLOTLIB = formulas.available()
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib not installed (optional extra 'math')")


def math_tokens(markdown: str) -> list[tuple[str, str]]:
    """(type, content) of every math token, inline or block."""
    found = []
    for token in parse(markdown):
        if token.type == "math_block":
            found.append((token.type, token.content))
        for child in token.children or []:
            if child.type.startswith("math"):
                found.append((child.type, child.content))
    return found


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Energy $E = mc^2$ here", [("math_inline", "E = mc^2")]),
        ("Inline \\(a+b\\) too", [("math_inline", "a+b")]),
        ("Shown $$x^2$$ in text", [("math_display", "x^2")]),
        ("Shown \\[y\\] in text", [("math_display", "y")]),
        ("$$\n\\int_0^1 x\\,dx\n$$", [("math_block", "\\int_0^1 x\\,dx")]),
        ("\\[\na = b\n\\]", [("math_block", "a = b")]),
        ("$$ a = b $$", [("math_block", "a = b")]),
        ("- item\n\n  $$\n  x\n  $$", [("math_block", "x")]),
        ("It costs $5 and $10 today.", []),
        ("Between $5-$10.", []),
        ("From $ 5 to 6 $ dollars.", []),
        ("Pay $20, or $x$5.", []),
        ("Escaped \\$x\\$ stays text.", []),
        ("Code `$x$` and `\\(y\\)` stay code.", []),
        ("```\n$$x$$\n```", []),
        ("    $x$ indented code", []),
        ("Price $5 then `code $` end", []),
        ("a $x$ and $y$ b", [("math_inline", "x"), ("math_inline", "y")]),
    ],
)
def test_what_counts_as_math(markdown: str, expected: list[tuple[str, str]]) -> None:
    assert math_tokens(markdown) == expected


def test_prices_stay_visible_text() -> None:
    text = " ".join(pdf_text(render("It costs $5 and $10, or $ 3.", META).pdf))
    assert "It costs $5 and $10, or $ 3." in " ".join(text.split())


def test_normalise_rewrites_what_mathtext_lacks() -> None:
    assert formulas.normalise(r"\tfrac12 + \displaystyle\frac{a}{b}") == [r"\frac{1}{2} + \frac{a}{b}"]
    rows = formulas.normalise(r"\begin{aligned} a &= b \\ c &= d \end{aligned}")
    assert rows == ["a = b", "c = d"]
    assert formulas.normalise(r"\frac{\frac{a}{b}}{c}", display=True) == [r"\dfrac{\frac{a}{b}}{c}"]
    assert formulas.upright_digits(r"x^2 + \text{m 2}") == r"x^\mathrm{2} + \text{m 2}"


@needs_matplotlib
def test_formulas_are_vector_paths_with_metrics() -> None:
    f = formulas.formula(r"\frac{a}{b}")
    assert f is not None and f.path is not None
    assert f.width > 0.3 and f.ascent > 0.5 and f.depth > 0.2  # a fraction reaches below the baseline
    assert formulas.formula(r"\frac{a}{b}") is f  # cached
    assert formulas.formula(r"\begin{pmatrix} 1 \end{pmatrix}") is None
    assert formulas.formula(r"\notacommand{x}") is None


@needs_matplotlib
def test_formulas_are_drawn_not_typed() -> None:
    sources = [r"E = mc^2", r"\frac{-b \pm \sqrt{b^2-4ac}}{2a}", r"\sum_{k=1}^{n} k^2", r"\int_0^\infty e^{-x}\,dx"]
    markdown = f"Inline ${sources[0]}$ and \\({sources[1]}\\).\n\n$$\n{sources[2]}\n$$\n\n\\[{sources[3]}\\]\n"
    result = render(markdown, META)
    assert result.stats.formulas == 4 and result.stats.formulas_as_source == []
    # The TeX source is in the text layer (invisible text over the formula), in reading order ...
    flat = " ".join(" ".join(pdf_text(result.pdf)).split())
    assert f"Inline {sources[0]} and" in flat
    for tex in sources:
        assert squash(tex) in squash(flat)
    # ... and the visible formula is a filled path: the page has path objects and no visible "\frac".
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(result.pdf)[0]
    assert sum(1 for o in page.get_objects() if o.type == 2) >= 4  # FPDF_PAGEOBJ_PATH


@needs_matplotlib
def test_inline_formula_does_not_overlap_neighbouring_lines() -> None:
    tall = r"\frac{\frac{a}{b}}{\frac{c}{d}}"
    text = "Words before the formula " * 6 + f"${tall}$" + " and words after it" * 12
    pages = pdf_text(render(text, META).pdf)
    assert len(pages) == 1 and squash(tall) in squash(pages[0])


def test_unparseable_formulas_show_their_source_in_monospace() -> None:
    bad = r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"
    result = render(f"Matrix ${bad}$ inline.\n\n$${bad}$$\n", META)
    assert result.stats.formulas_as_source == [bad, bad]
    flat = squash(" ".join(pdf_text(result.pdf)))
    assert squash(f"${bad}$") in flat and squash(f"$${bad}$$") in flat


def test_without_matplotlib_every_formula_shows_as_source(monkeypatch: pytest.MonkeyPatch) -> None:
    formulas.formula.cache_clear()
    monkeypatch.setitem(formulas._state, "parser", None)  # as if the import had failed
    try:
        result = render(r"Energy $E=mc^2$ and \(x_1\).", META)
    finally:
        formulas.formula.cache_clear()
    assert result.stats.formulas == 0 and result.stats.formulas_as_source == ["E=mc^2", "x_1"]
    flat = " ".join(" ".join(pdf_text(result.pdf)).split())
    assert "Energy $E=mc^2$ and \\(x_1\\)." in flat


def test_math_in_code_stays_code() -> None:
    result = render("`$x^2$` and\n\n```\n$$\\frac{a}{b}$$ \\(y\\)\n```\n", META)
    assert result.stats.formulas == 0 and result.stats.formulas_as_source == []
    text = " ".join(pdf_text(result.pdf))
    assert "$x^2$" in text and re.search(r"\$\$\\frac\{a\}\{b\}\$\$ \\\(y\\\)", text)
