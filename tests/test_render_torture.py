"""The torture answer: every Markdown construct, twelve scripts (two of them shaped by HarfBuzz when uharfbuzz is
installed), twenty formulas, a 12-column table (turned sideways) and a 300-character code line, rendered with
nothing lost."""

from __future__ import annotations

import re
import sys
import threading
import unicodedata

import pypdfium2 as pdfium
import pytest

from eink_llm.render import formulas, get_device
from eink_llm.render.api import render
from tests.test_render import META, pdf_text, squash
from tests.test_render_visual import assert_no_ink_outside_margins

HAVE_MATPLOTLIB = formulas.available()

#: (delimiters, TeX) — inline and displayed, in every syntax.
FORMULA_SPECS = [
    ("$", r"E = mc^2"),
    ("$", r"a^2 + b^2 = c^2"),
    ("$", r"\alpha + \beta \neq \gamma"),
    ("$", r"\sqrt{2} \approx 1.414"),
    ("$", r"x_{n+1} = x_n - \frac{f(x_n)}{f'(x_n)}"),
    ("\\(", r"\sin^2\theta + \cos^2\theta = 1"),
    ("\\(", r"\vec{F} = m\vec{a}"),
    ("\\(", r"\lim_{n \to \infty} \left(1 + \frac{1}{n}\right)^n = e"),
    ("$", r"\mathbb{R}^n"),
    ("$", r"\hbar\omega"),
    ("$$", r"\int_0^\infty e^{-x^2}\,dx = \frac{\sqrt{\pi}}{2}"),
    ("$$", r"\sum_{k=1}^{n} k = \frac{n(n+1)}{2}"),
    ("\\[", r"\nabla \cdot \mathbf{E} = \frac{\rho}{\varepsilon_0}"),
    ("\\[", r"\begin{aligned} f(x) &= (x+1)^2 \\ &= x^2 + 2x + 1 \end{aligned}"),
    ("$$", r"\binom{n}{k} = \frac{n!}{k!\,(n-k)!}"),
    ("$$", r"\prod_{p} \frac{1}{1 - p^{-s}} = \zeta(s)"),
    ("\\[", r"\oint_C \mathbf{B} \cdot d\mathbf{l} = \mu_0 I"),
    ("$", r"\log_2 1024 = 10"),
    ("$$", r"\frac{\partial u}{\partial t} = \alpha \nabla^2 u"),
    ("$", r"P(A \mid B) = \frac{P(B \mid A)\,P(A)}{P(B)}"),
]
FORMULAS = [tex for _, tex in FORMULA_SPECS]
_CLOSE = {"$": "$", "\\(": "\\)", "$$": "$$", "\\[": "\\]"}


def _formula(n: int) -> str:
    opener, tex = FORMULA_SPECS[n]
    return f"{opener}{tex}{_CLOSE[opener]}"


SCRIPTS = {
    "Latin": "Déjà vu, naïve façade, Straße, Łódź",
    "Greek": "Η φωτοσύνθεση μετατρέπει το φως",
    "Cyrillic": "Фотосинтез превращает свет",
    "Armenian": "Լուսասինթեզը լույսը վերածում է",
    "Georgian": "ფოტოსინთეზი სინათლეს გარდაქმნის",
    "Hebrew": "פוטוסינתזה הופכת אור לסוכר",
    "Arabic": "البناء الضوئي يحول الضوء إلى سكر",
    "Chinese": "光合作用把光能转化为化学能",
    "Japanese": "ひかりごうせい と カタカナ",
    "Korean": "광합성은 빛을 에너지로 바꾼다",
    "Hindi": "प्रकाश संश्लेषण प्रकाश को ऊर्जा में बदलता है",
    "Thai": "การสังเคราะห์ด้วยแสงเปลี่ยนแสงเป็นพลังงาน",
}
EMOJI = "🌱 ☀️ 🦀 ✓ ∑ ≤ ∞ → ⇒"
CODE_LINE = "result = transform(" + ", ".join(f"parameter_{i:02d}=value_{i:02d}" for i in range(13)) + ")"
COLUMNS = [f"Col{c:02d}" for c in range(12)]
TABLE = (
    "| "
    + " | ".join(COLUMNS)
    + " |\n|"
    + "---|" * 12
    + "\n"
    + "".join("| " + " | ".join(f"r{r}c{c:02d}" for c in range(12)) + " |\n" for r in range(3))
)

TORTURE = (
    f"""# Torture answer

Plain text with **strong**, *emphasis*, ***both***, ~~struck~~, `inline code`, an escaped \\*star\\*,
raw <span>html</span> shown as text, a hard break at the end of this line\\
and an autolink <https://example.org/auto>, a [link](https://example.org/docs "title") and
a [reference link][ref]. Prices: $5 and $10 stay text.

[ref]: https://example.org/reference

## Formulas

Inline: {_formula(0)}, {_formula(1)}, {_formula(2)}, {_formula(3)} and {_formula(4)}.
Parentheses: {_formula(5)}, {_formula(6)} and {_formula(7)}; also {_formula(8)} and {_formula(9)}.

{_formula(10)}

{_formula(11)}

{_formula(12)}

{_formula(13)}

A display inside a paragraph {_formula(14)} continues here, then {_formula(15)} and more.

{_formula(16)}

Last inline ones: {_formula(17)}, and {_formula(19)}.

{_formula(18)}

### Scripts

"""
    + "\n".join(f"- {name}: {text}" for name, text in SCRIPTS.items())
    + f"""
- Emoji and symbols: {EMOJI}

#### Lists

1. First ordered
   1. Nested ordered
      - Nested bullet level three
        - Level four bullet
2. Second ordered
   - [ ] open task item
   - [x] done task item

* Star bullet
+ Plus bullet

##### Quotes

> Outer quote line
>
> > Inner quote with **bold** and `code`
>
> Back in the outer quote

###### Code

```python
{CODE_LINE}
def fn(a, b):
    return a if a < b else b  # comparison && more
```

    indented code block line

---

{TABLE}
![a diagram of the cycle](cycle.png)

Final paragraph after a rule.
"""
)


def expected_tokens() -> list[str]:
    """Words and phrases that must all be in the text layer."""
    tokens = [
        "Torture answer",
        "strong",
        "emphasis",
        "both",
        "struck",
        "inline code",
        "*star*",
        "<span>html</span>",
        "https://example.org/auto",
        "https://example.org/docs",
        "https://example.org/reference",
        "$5 and $10 stay text",
        "Nested ordered",
        "Level four bullet",
        "☐ open task item",
        "☑ done task item",
        "Star bullet",
        "Plus bullet",
        "Inner quote with bold and code",
        "Back in the outer quote",
        CODE_LINE,
        "return a if a < b else b # comparison && more",
        "indented code block line",
        "[image: a diagram of the cycle]",
        "Final paragraph after a rule.",
        *COLUMNS,
        *(f"r{r}c{c:02d}" for r in range(3) for c in range(12)),
        *(emoji for emoji in EMOJI.replace("\ufe0f", "").split()),
    ]
    for text in SCRIPTS.values():
        tokens.extend(unicodedata.normalize("NFKC", text).replace(",", "").split())
    return tokens


def test_torture_answer_loses_nothing() -> None:
    result = render(TORTURE, META)
    pdf = result.pdf
    pages = pdf_text(pdf)
    assert 2 <= len(pages) <= 14
    flat = unicodedata.normalize("NFKC", " ".join(" ".join(pages).split()))
    squashed = squash(flat)
    lost = [t for t in expected_tokens() if squash(t) not in squashed and squash(t[::-1]) not in squashed]
    assert not lost, f"not in the text layer: {lost}"
    if HAVE_MATPLOTLIB:
        assert result.stats.formulas == len(FORMULAS) and result.stats.formulas_as_source == []
    else:
        assert len(result.stats.formulas_as_source) == len(FORMULAS)
    for tex in FORMULAS:  # drawn formulas carry their source as invisible text; the others show it
        assert squash(tex) in squashed, tex
    assert "plain text" not in flat and not result.plain_fallback
    assert not re.search("[\ue000-\uf8ff\U000f0000-\U0010ffff]", flat)  # no private-use stand-ins for glyphs
    assert_no_ink_outside_margins(pdf, get_device("remarkable2"))
    doc = pdfium.PdfDocument(pdf)
    assert len(list(doc.get_toc())) == len(re.findall(r"^#{1,6} ", TORTURE, flags=re.MULTILINE))


def test_torture_answer_has_a_font_for_every_character() -> None:
    result = render(TORTURE, META)
    if result.missing_chars:
        names = ", ".join(f"U+{ord(c):04X}" for c in result.missing_chars)
        pytest.skip(
            f"this system lacks fonts for {names} "
            "(Debian/Ubuntu: apt-get install fonts-wqy-zenhei fonts-noto-core fonts-symbola)"
        )
    assert result.missing_chars == []


@pytest.mark.parametrize("name", ["remarkable-move", "supernote-nomad"])
def test_torture_answer_stays_inside_the_margins_on_small_screens(name: str) -> None:
    assert_no_ink_outside_margins(render(TORTURE, META, device=name).pdf, get_device(name))


def test_torture_answer_renders_identically_in_parallel_threads() -> None:
    """The daemon renders in two worker threads. Thread switches are made very frequent so that a race (such as
    reportlab's shared font files being subset by two PDFs at once) shows up every run, not one run in twenty."""
    expected = render(TORTURE, META).pdf
    results: list[bytes] = []
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _round in range(3):
            threads = [threading.Thread(target=lambda: results.append(render(TORTURE, META).pdf)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(switch_interval)
    assert len(results) == 12 and all(pdf == expected for pdf in results)
