"""How long the renderer takes for a typical long answer (~2,000 words of mixed Markdown).

Not a test: run it by hand when changing the renderer and compare the figures (docs/render-performance.md).

    python benchmarks/render_speed.py [--runs 50] [--cold-runs 5] [--device remarkable2]
                                      [--answer FILE.md] [--profile] [--instructions]

Three kinds of figure, because wall-clock time on a shared machine is noisy:

* **wall** and **CPU** time of every warm render (min, median, p95, max). CPU time (``time.process_time``) does
  not count the time the process waits while other processes use the cores, so it is much steadier than wall
  time when the machine is busy; the minimum of either is the best estimate of the undisturbed cost.
* **Python calls** per warm render, counted by cProfile on one extra render: deterministic for a given input and
  library versions, so a change in it is a change in the work done, never noise.
* with ``--instructions``, **instructions** per warm render, counted by valgrind's callgrind in two child
  processes (warm-up only, and warm-up plus ``--instruction-renders`` renders; the difference divided by the
  renders). Repeatable to ~0.01 % between runs and independent of load; takes ~2 minutes.

"Cold" is the first render in a fresh process (font registration, markdown-it setup, first use of every code
path), measured in separate child processes; "import" is ``import eink_llm.render`` in those children.
"Warm" is every later render in one process, which is what a long-running daemon pays per answer.

``--answer`` times another Markdown file instead of the built-in sample (e.g. docs/gallery/answer.md, with
formulas and other scripts; ``--answer hindi``: a built-in Hindi answer, to see what shaping costs);
``--profile`` prints the 25 functions with the most own time and the 25 with the most cumulative time over the
warm renders (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
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


HINDI = "भारत एक विशाल देश है जिसकी संस्कृति बहुत प्राचीन है और यहाँ अनेक भाषाएँ बोली जाती हैं। "


def hindi_answer() -> str:
    """1,656 words of Devanagari in 12 sections: what shaping with HarfBuzz costs (optional extra 'shaping')."""
    return "\n\n".join(["## शीर्षक\n\n" + HINDI * 8] * 12)


def _meta() -> RenderMeta:
    from eink_llm.render import RenderMeta

    return RenderMeta("benchmark", "conv_20250102_140300_bench", 7, datetime(2025, 1, 2, tzinfo=UTC), "bench")


def _markdown(answer: str | None) -> str:
    if answer is None:
        return sample_answer()
    if answer == "hindi":
        return hindi_answer()
    with open(answer, encoding="utf-8") as fh:
        return fh.read()


def _child_cold(device: str, answer: str | None) -> None:
    started = time.perf_counter()
    from eink_llm.render import render_answer

    imported = time.perf_counter()
    render_answer(_markdown(answer), _meta(), device=device)
    done = time.perf_counter()
    print(f"{(imported - started) * 1000:.1f} {(done - imported) * 1000:.1f}")


def _child_renders(device: str, answer: str | None, renders: int) -> None:
    """Warm up with one render, then render ``renders`` more times (run under callgrind)."""
    from eink_llm.render import render_answer

    markdown, meta = _markdown(answer), _meta()
    render_answer(markdown, meta, device=device)
    for _ in range(renders):
        render_answer(markdown, meta, device=device)


def _callgrind(device: str, answer: str | None, renders: int) -> int:
    """Instructions executed by a child doing a warm-up render and ``renders`` more (valgrind callgrind)."""
    extra = ["--answer", answer] if answer else []
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                __file__,
                "--child-renders",
                str(renders),
                "--device",
                device,
                *extra,
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        ).stderr
    match = re.search(r"Collected\s*:\s*(\d+)", out)
    if match is None:
        raise SystemExit(f"could not read callgrind's instruction count:\n{out[-2000:]}")
    return int(match.group(1))


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"min {ordered[0]:.1f}, median {statistics.median(ordered):.1f}, p95 {p95:.1f}, max {ordered[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="warm renders to time (default 50)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes for the cold figure (0: skip)")
    parser.add_argument("--device", default="remarkable2")
    parser.add_argument(
        "--answer", help="Markdown file to render instead of the built-in 2,000-word sample ('hindi': built-in Hindi)"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of the warm renders")
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind (~2 min)")
    parser.add_argument("--instruction-renders", type=int, default=3, help="warm renders counted by valgrind")
    parser.add_argument("--child-cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-renders", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cold:
        _child_cold(args.device, args.answer)
        return
    if args.child_renders is not None:
        _child_renders(args.device, args.answer, args.child_renders)
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
    render_answer(markdown, meta, device=args.device)  # second warm-up: lazily filled caches
    wall, cpu = [], []
    for _ in range(args.runs):
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        render_answer(markdown, meta, device=args.device)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)

    counter = cProfile.Profile()
    counter.enable()
    render_answer(markdown, meta, device=args.device)
    counter.disable()
    calls = pstats.Stats(counter).total_calls  # type: ignore[attr-defined]

    pages = len(pdfium.PdfDocument(pdf))
    print(f"answer: {len(markdown.split())} words, {len(markdown)} chars -> {pages} pages, {len(pdf) / 1024:.0f} KiB")
    print(f"device: {args.device}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    if args.cold_runs:
        print(f"import eink_llm.render: median {statistics.median(imports):.0f} ms ({args.cold_runs} processes)")
        print(f"cold first render:      median {statistics.median(colds):.0f} ms ({args.cold_runs} processes)")
    print(f"warm render, wall:      {_summary(wall)} ({args.runs} runs)")
    print(f"warm render, CPU:       {_summary(cpu)}")
    print(f"Python calls / render:  {calls:,} (cProfile; deterministic)")
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        base = _callgrind(args.device, args.answer, 0)
        more = _callgrind(args.device, args.answer, args.instruction_renders)
        per = (more - base) / args.instruction_renders
        print(f"instructions / render:  {per / 1e6:,.1f} M (callgrind, {args.instruction_renders} renders)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(10):
            render_answer(markdown, meta, device=args.device)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
