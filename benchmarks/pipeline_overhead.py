"""How much the pipeline adds to the physical work of answering a page (issue 12, docs/hostile-input.md).

Not a test: run it by hand and compare the figures with docs/hostile-input.md.

    python benchmarks/pipeline_overhead.py [--runs 30]

**Pipeline**: from a job starting (``Pipeline.run``) to its RESPONSE_ on disk and recorded, with the offline
``echo`` backend, for a 1-page and a 10-page tablet PDF: reading the input (in the reading cage, warm), resolving
the conversation, building the context, preparing the pages for the model, laying out the answer, the atomic
write with its fsyncs, and the database commits. Each run uses a new file name and new content, so nothing is
"answered before".

**Floor**: the same physical work done directly with the same libraries, in the same run: rasterize the 1-page
PDF (pypdfium2, grayscale, 150 dpi), encode the page as PNG, lay out a 1-page answer (the echo answer's text, with
the renderer the pipeline uses) and write it with fsync. The ratio pipeline / floor is the overhead (target:
at most 2.5x for one page).

Figures are medians (and minima) of wall-clock time over ``--runs`` runs after two warm-up runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from eink_llm.backends import create_backend
from eink_llm.config import Config
from eink_llm.pipeline import Pipeline
from eink_llm.render import RenderMeta, render_answer
from eink_llm.store import Store

PAGE_SIZE = (157.8 * mm, 210.4 * mm)  # a reMarkable 2 page


def tablet_pdf(pages: int, seed: int) -> bytes:
    """Pen-like strokes on each page, different for every ``seed`` (so every run is new content)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=PAGE_SIZE, invariant=True)
    for number in range(pages):
        pdf.setLineWidth(2.5)
        for row in range(6):
            y = PAGE_SIZE[1] - (30 + 18 * row) * mm
            wobble = (seed * 7 + number * 3 + row) % 11
            pdf.bezier(20 * mm, y, 60 * mm, y + wobble * mm, 90 * mm, y - 8 * mm, 130 * mm, y)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:6.1f} ms, min {min(times) * 1000:6.1f} ms"


def make_pipeline(config: Config, store: Store, backends: dict[str, Any]) -> tuple[Pipeline, Callable[[], None]]:
    """The pipeline as the daemon builds it: with a warm reading cage when this version has one."""
    try:
        from eink_llm.reader.cage import Cage  # the benchmark also runs against older versions
    except ImportError:
        return Pipeline(config, store, backends), lambda: None
    cage = Cage(size=1)
    return Pipeline(config, store, backends, cage=cage), cage.close


def pipeline_times(root: Path, pages: int, runs: int) -> list[float]:
    inbox = root / f"inbox-{pages}"
    inbox.mkdir()
    config = Config.model_validate({"watch": {"folders": [str(inbox)]}, "llm": {"backend": "echo"}})
    backends = {name: create_backend(config.profile(name).llm.backend_settings()) for name in config.profile_names()}
    times: list[float] = []
    with Store.open(root / f"db-{pages}.sqlite3") as store:
        pipeline, close = make_pipeline(config, store, backends)
        try:
            for run in range(runs + 2):
                path = inbox / f"question-{pages}-{run}.pdf"
                data = tablet_pdf(pages, run)
                path.write_bytes(data)

                store.enqueue(
                    path,
                    root=inbox,
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                    mtime_ns=path.stat().st_mtime_ns,
                )
                job = store.claim_job()
                assert job is not None
                start = time.perf_counter()
                outcome = pipeline.run(job)
                elapsed = time.perf_counter() - start
                assert outcome.status == "ok" and outcome.output is not None and outcome.output.exists(), outcome
                if run >= 2:
                    times.append(elapsed)
        finally:
            close()
    return times


def floor_times(root: Path, runs: int) -> list[float]:
    data = tablet_pdf(1, 0)
    answer = (
        "**Received:** 1 page (a grayscale PNG, 932x1243 px).\n\n"
        "This is the offline echo backend: no model was asked. Everything arrived and the loop works."
    )
    meta = RenderMeta(
        title="question",
        conversation_id="conv_20261205_000000_00000000",
        exchange=1,
        created_at=datetime.now(UTC),
        model="echo",
    )
    out = root / "floor.pdf"

    def once() -> None:
        document = pdfium.PdfDocument(data)
        page = document[0]
        bitmap = page.render(scale=150 / 72, grayscale=True)
        image = bitmap.to_pil().copy()
        bitmap.close()
        page.close()
        document.close()
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=6)
        pdf = render_answer(answer, meta, device="remarkable2", font_size=11.0, reply_page=True)
        with out.open("wb") as handle:
            handle.write(pdf)
            handle.flush()
            os.fsync(handle.fileno())

    once()
    once()
    return [timed(once) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        floor = floor_times(root, args.runs)
        one = pipeline_times(root, 1, args.runs)
        ten = pipeline_times(root, 10, max(5, args.runs // 3))
        floor_again = floor_times(root, args.runs)  # the machine's load may change during the run
    floor_all = floor + floor_again
    ratio = statistics.median(one) / statistics.median(floor_all)
    print(f"floor (rasterize + PNG + 1-page answer + fsync): {summary(floor_all)}")
    print(f"pipeline, 1-page PDF:                           {summary(one)}")
    print(f"pipeline, 10-page PDF:                          {summary(ten)}")
    print(f"ratio pipeline (1 page) / floor, medians:        {ratio:.2f}x  (target <= 2.5x)")


if __name__ == "__main__":
    main()
