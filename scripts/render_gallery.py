"""Render docs/gallery/answer.md for every device and save each first page as docs/gallery/<device>.png; the
STATUS page (a made-up but typical moment) as docs/gallery/status/<device>.png; and docs/gallery/drawings.md (a
circuit, a cycle diagram, a function plot) on the remarkable2, all its pages side by side, as
docs/gallery/drawings.png.

    python scripts/render_gallery.py [--dpi 110] [--answer docs/gallery/answer.md] [--out docs/gallery]

The PNGs show, at roughly the tablets' own sharpness, what an answer looks like on each screen; regenerate
them after changing the renderer and look at them before committing. Needs pypdfium2 (a dependency) and,
for the formulas, matplotlib, and for the SVG drawings, svglib (the drawings extra); CJK, Hangul and emoji
need system fonts (see docs/rendering.md).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from eink_llm.render import DEVICES, RenderMeta
from eink_llm.render.api import render
from eink_llm.status_page import render_page
from eink_llm.statusinfo import BudgetInfo, DaemonInfo, ServiceInfo, StatusSnapshot
from eink_llm.store import Heartbeat, Outcome, RunningJob, WaitingJob

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Why doesn't the period of a pendulum depend on the mass?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answer", type=Path, default=ROOT / "docs" / "gallery" / "answer.md")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--dpi", type=float, default=110.0, help="raster resolution (default 110)")
    parser.add_argument("--font-size", type=float, default=11.0)
    args = parser.parse_args()

    markdown = args.answer.read_text(encoding="utf-8")
    meta = RenderMeta(
        "pendulum-period",
        "conv_20250314_091500_5e1f2a3b",
        2,
        datetime(2025, 3, 14, 9, 15, tzinfo=UTC),
        model="gallery",
        transcription=QUESTION,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, device in DEVICES.items():
        result = render(markdown, meta, device=device, font_size=args.font_size)
        doc = pdfium.PdfDocument(result.pdf)
        try:
            image = doc[0].render(scale=args.dpi / 72, grayscale=True).to_pil().convert("L")
            pages = len(doc)
        finally:
            doc.close()
        target = args.out / f"{name}.png"
        image.save(target, optimize=True)
        notes = []
        if result.stats.formulas_as_source:
            notes.append(f"{len(result.stats.formulas_as_source)} formulas as source")
        if result.missing_chars:
            notes.append(f"no font for {''.join(result.missing_chars)!r}")
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        summary = f"{image.size[0]}x{image.size[1]} px, {pages} pages"
        print(f"{shown}: {summary}{'; ' + '; '.join(notes) if notes else ''}")
    status_pages(args.out / "status", args.dpi, args.font_size)
    drawings_page(args.out, args.dpi, args.font_size)


def status_snapshot() -> StatusSnapshot:
    """A typical moment: one question with the local model, two waiting, the cloud service down, one budget
    spent, the latest answers and an error."""
    now = datetime(2025, 3, 14, 9, 41, tzinfo=UTC)
    started = now - timedelta(days=3, hours=2)
    beat = Heartbeat(2417, "homeserver", "0.1.0", started, now)
    at = [now - timedelta(minutes=m) for m in (2, 9, 25, 47, 70)]
    return StatusSnapshot(
        taken_at=now,
        folder=Path("/srv/sync/alice/ask-ai"),
        daemon=DaemonInfo("running", beat),
        working=(RunningJob(Path("Maths homework.pdf"), now - timedelta(minutes=3), 1),),
        waiting=(
            WaitingJob(Path("Reading notes p12.pdf"), now - timedelta(minutes=1), now, None),
            WaitingJob(Path("Quick sketch.png"), now, now, None),
        ),
        waiting_count=2,
        services=(
            ServiceInfo("default", "ollama", "llama3.2-vision", "answering"),
            ServiceInfo("tutor", "anthropic", "claude-sonnet-4", "down", now + timedelta(minutes=4), 3),
        ),
        budgets=(
            BudgetInfo("default", 182_340, 0.0, None, None, datetime(2025, 4, 1, tzinfo=UTC)),
            BudgetInfo(
                "tutor",
                1_000_512,
                4.87,
                1_000_000,
                5.0,
                datetime(2025, 4, 1, tzinfo=UTC),
                "The monthly budget is spent",
                datetime(2025, 4, 1, tzinfo=UTC),
            ),
        ),
        recent=(
            Outcome(at[0], "Pendulum.pdf", True, "RESPONSE_conv_x_ex002_Pendulum.pdf", None),
            Outcome(at[1], "Essay outline.pdf", True, "RESPONSE_conv_y_ex001_Essay outline.pdf", None),
            Outcome(at[2], "scan.jpg", False, "ERROR_conv_z_ex001_scan.pdf", "scan.jpg is damaged: it cannot be read."),
            Outcome(at[3], "Pendulum.pdf", True, "RESPONSE_conv_x_ex001_Pendulum.pdf", None),
            Outcome(at[4], "Vocabulary.pdf", True, "RESPONSE_conv_w_ex001_Vocabulary.pdf", None),
        ),
    )


def status_pages(out: Path, dpi: float, font_size: float) -> None:
    """The STATUS page of the same moment on every device (times shown in UTC)."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    out.mkdir(parents=True, exist_ok=True)
    snapshot = status_snapshot()
    for name in DEVICES:
        pdf = render_page(snapshot, device=name, font_size=font_size, min_interval=60)
        doc = pdfium.PdfDocument(pdf)
        try:
            image = doc[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            pages = len(doc)
        finally:
            doc.close()
        target = out / f"{name}.png"
        image.save(target, optimize=True)
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        print(f"{shown}: {image.size[0]}x{image.size[1]} px, {pages} page{'s' if pages > 1 else ''}")


def drawings_page(out: Path, dpi: float, font_size: float) -> None:
    """docs/gallery/drawings.md on the remarkable2: every page, side by side, in one PNG."""
    meta = RenderMeta(
        "three-drawings",
        "conv_20250314_101500_7c2d4e6f",
        1,
        datetime(2025, 3, 14, 10, 15, tzinfo=UTC),
        model="gallery",
        transcription="Draw the circuit, sketch the Krebs cycle, and show the graph of a damped oscillation.",
    )
    markdown = (ROOT / "docs" / "gallery" / "drawings.md").read_text(encoding="utf-8")
    result = render(markdown, meta, device="remarkable2", font_size=font_size)
    doc = pdfium.PdfDocument(result.pdf)
    try:
        pages = [page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L") for page in doc]
    finally:
        doc.close()
    gap = 12
    sheet = Image.new("L", (sum(p.width for p in pages) + gap * (len(pages) - 1), max(p.height for p in pages)), 160)
    x = 0
    for page in pages:
        sheet.paste(page, (x, 0))
        x += page.width + gap
    target = out / "drawings.png"
    sheet.save(target, optimize=True)
    notes = [f"{result.stats.drawings} drawings"] + [f"shown as source: {r}" for r in result.stats.drawings_as_source]
    print(f"{target.name}: {sheet.size[0]}x{sheet.size[1]} px, {len(pages)} pages; {'; '.join(notes)}")


if __name__ == "__main__":
    main()
