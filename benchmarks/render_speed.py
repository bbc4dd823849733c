"""How long the renderer takes for a typical long answer (~2,000 words of mixed Markdown).

Not a test: run it by hand when changing the renderer and compare the figures.

    python benchmarks/render_speed.py [--runs 20] [--cold-runs 5] [--device remarkable2]
                                      [--answer FILE.md] [--profile]

``--answer`` times another Markdown file instead of the built-in sample (e.g. docs/gallery/answer.md, with
formulas and other scripts); ``--profile`` prints the 25 most expensive functions of the warm renders
(cProfile, cumulative time).

"Cold" is the first render in a fresh process (font registration, markdown-it setup, first use of every code
path), measured in separate child processes; "import" is ``import eink_llm.render`` in those children.
"Warm" is every later render in one process, which is what a long-running daemon pays per answer.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eink_llm.render import RenderMeta

TEXT = (
    "light energy reaches the leaf where chlorophyll absorbs mostly red and blue wavelengths while green is "
    "reflected which is why plants look green to us the absorbed energy drives electrons through a chain of "
    "proteins embedded in the thylakoid membrane and this flow pumps protons that power an enzyme making ATP"
)


def sample_answer(target_words: int = 2000) -> str:
    """Headings, paragraphs, nested and task lists, a quote, a table, code and links, repeated to length."""
    vocabulary = TEXT.split()
    parts: list[str] = []
    words, n = 0, 0
    while words < target_words:
        n += 1
        para = " ".join(vocabulary[(n * 7 + i) % len(vocabulary)] for i in range(150))
        part = (
            f"## Part {n}: the *details*\n\n{para} — see [source {n}](https://example.org/articles/{n}).\n\n"
            f"1. First step of part {n} with `inline < code && more`\n"
            f"   - nested point about **ATP** and NADPH\n"
            f"   - another nested point\n"
            f"2. Second step\n\n"
            f"- [ ] open question {n}\n- [x] settled question {n}\n\n"
            f"> A quoted remark {n}: Greek αβγ, Cyrillic фотосинтез.\n\n"
            f"| Stage | Place | Output |\n|---|---|---:|\n"
            f"| light {n} | thylakoid | ATP |\n| dark {n} | stroma | sugar |\n\n"
            f"```python\ndef step_{n}(x):\n    return [v * {n} for v in range(x) if v % 3 == 0 and "
            f"some_function_with_a_long_name(v, 'argument number {n}')]\n```\n"
        )
        parts.append(part)
        words += len(part.split())
    return "# Photosynthesis, in depth\n\n" + "\n".join(parts)


def _meta() -> RenderMeta:
    from eink_llm.render import RenderMeta

    return RenderMeta("benchmark", "conv_20250102_140300_bench", 7, datetime(2025, 1, 2, tzinfo=UTC), "bench")


def _child_cold(device: str, answer: str | None) -> None:
    started = time.perf_counter()
    from eink_llm.render import render_answer

    imported = time.perf_counter()
    render_answer(_markdown(answer), _meta(), device=device)
    done = time.perf_counter()
    print(f"{(imported - started) * 1000:.1f} {(done - imported) * 1000:.1f}")


def _markdown(answer: str | None) -> str:
    if answer is None:
        return sample_answer()
    with open(answer, encoding="utf-8") as fh:
        return fh.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="warm renders to time (default 20)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes for the cold figure")
    parser.add_argument("--device", default="remarkable2")
    parser.add_argument("--answer", help="Markdown file to render instead of the built-in 2,000-word sample")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of the warm renders")
    parser.add_argument("--child-cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cold:
        _child_cold(args.device, args.answer)
        return

    imports, colds = [], []
    for _ in range(args.cold_runs):
        extra = ["--answer", args.answer] if args.answer else []
        out = subprocess.run(
            [sys.executable, __file__, "--child-cold", "--device", args.device, *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        imports.append(float(out[0]))
        colds.append(float(out[1]))

    import pypdfium2 as pdfium

    from eink_llm.render import render_answer

    markdown, meta = _markdown(args.answer), _meta()
    pdf = render_answer(markdown, meta, device=args.device)
    warm = []
    profiler = cProfile.Profile() if args.profile else None
    for _ in range(args.runs):
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        render_answer(markdown, meta, device=args.device)
        if profiler is not None:
            profiler.disable()
        warm.append((time.perf_counter() - started) * 1000)

    pages = len(pdfium.PdfDocument(pdf))
    print(f"answer: {len(markdown.split())} words, {len(markdown)} chars -> {pages} pages, {len(pdf) / 1024:.0f} KiB")
    print(f"device: {args.device}")
    print(f"import eink_llm.render: median {statistics.median(imports):.0f} ms ({args.cold_runs} processes)")
    print(f"cold first render:      median {statistics.median(colds):.0f} ms ({args.cold_runs} processes)")
    print(
        f"warm render:            median {statistics.median(warm):.0f} ms, "
        f"min {min(warm):.0f}, max {max(warm):.0f} ({args.runs} runs)"
        + (" [under cProfile: slower]" if profiler is not None else "")
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
