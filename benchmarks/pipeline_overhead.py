"""How much the pipeline adds to the physical work of answering a page (issue 12, docs/hostile-input.md).

Not a test: run it by hand and compare the figures with docs/hostile-input.md.

    python benchmarks/pipeline_overhead.py [--runs 30]

**Pipeline**: from a job starting (``Pipeline.run``) to its RESPONSE_ on disk and recorded, with the offline
``echo`` backend, for a 1-page and a 10-page tablet PDF: reading the input (in the reading cage, warm), resolving
the conversation, building the context, preparing the pages for the model, laying out the answer, the atomic
write with its fsyncs, and the database commits. Each run uses a new file name and new content, so nothing is
"answered before".

**Floor**: the same physical work done directly with the same libraries, in the same run: rasterize the 1-page
PDF (pypdfium2, grayscale, 150 dpi), encode the page as PNG, lay out the 1-page answer (the very text the echo
backend answered in the pipeline, with the renderer and settings the pipeline uses, reply page included) and
write it with fsync. The ratio pipeline / floor is the overhead (target:
at most 2.5x for one page). A second floor lays out a two-line answer instead: the least a 1-page answer costs,
so the ratio against it is the harshest reading.

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
from eink_llm.logsetup import configure_logging
from eink_llm.pipeline import Pipeline
from eink_llm.reader import read_input
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


#: A minimal answer, for the second floor figure (the least layout work a 1-page answer can be).
SHORT_ANSWER = "The derivative of x² is 2x.\n\nDifferentiate term by term: d/dx xⁿ = n·xⁿ⁻¹."


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
    return Pipeline(config, store, backends, decoder=cage), cage.close


class PipelineRunner:
    """A pipeline on its own inbox and database; :meth:`once` answers one new PDF and returns the time taken."""

    def __init__(self, root: Path, pages: int) -> None:
        self.pages = pages
        self.inbox = root / f"inbox-{pages}"
        self.inbox.mkdir()
        config = Config.model_validate({"watch": {"folders": [str(self.inbox)]}, "llm": {"backend": "echo"}})
        backends = {
            name: create_backend(config.profile(name).llm.backend_settings()) for name in config.profile_names()
        }
        self.store = Store.open(root / f"db-{pages}.sqlite3")
        self.pipeline, self._close = make_pipeline(config, self.store, backends)
        self.runs = 0

    def once(self) -> float:
        self.runs += 1
        path = self.inbox / f"question-{self.pages}-{self.runs}.pdf"
        data = tablet_pdf(self.pages, self.runs)
        path.write_bytes(data)
        self.store.enqueue(
            path,
            root=self.inbox,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            mtime_ns=path.stat().st_mtime_ns,
        )
        job = self.store.claim_job()
        assert job is not None
        start = time.perf_counter()
        outcome = self.pipeline.run(job)
        elapsed = time.perf_counter() - start
        assert outcome.status == "ok" and outcome.output is not None and outcome.output.exists(), outcome
        return elapsed

    def close(self) -> None:
        self._close()
        self.store.close()


def floor_once(root: Path, answer: str) -> Callable[[], None]:
    """The physical work, for ``answer`` (the very text the pipeline laid out for a 1-page question)."""
    data = tablet_pdf(1, 0)
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

    return once


def decode_figures(root: Path, runs: int) -> None:
    """Per-page reading cost: ``read_input`` in this process, and through a warm reading cage (if this version
    has one), for a 1-page and a 10-page PDF; minima over ``runs`` interleaved runs."""

    try:
        from eink_llm.reader.cage import Cage  # the benchmark also runs against older versions
    except ImportError:
        Cage = None  # type: ignore[assignment,misc]
    cage = Cage(size=1) if Cage is not None else None
    try:
        for pages in (1, 10):
            path = root / f"decode-{pages}.pdf"
            path.write_bytes(tablet_pdf(pages, 99))
            here: list[float] = []
            caged: list[float] = []
            for _ in range(runs + 2):
                here.append(timed(lambda path=path: read_input(path)))
                if cage is not None:
                    caged.append(timed(lambda path=path: read_input(path, decoder=cage)))
            line = f"reading a {pages:2d}-page PDF: in-process min {min(here[2:]) * 1000:5.1f} ms"
            if caged:
                line += f", in the cage min {min(caged[2:]) * 1000:5.1f} ms"
            print(line)
    finally:
        if cage is not None:
            cage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    configure_logging("console", "warning")  # one line per answer would dwarf the figures
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        decode_figures(root, args.runs)
        one, ten = PipelineRunner(root, 1), PipelineRunner(root, 10)
        one.once()
        answer = one.store.exchanges(limit=1)[0].response_text or ""
        floor = floor_once(root, answer)
        short_floor = floor_once(root, SHORT_ANSWER)
        try:
            for _ in range(2):  # warm-up: fonts, the reading process, first use of every code path
                floor(), one.once(), ten.once()
            # Interleaved, so that the machine's load (shared, 2 cores) weighs on all figures alike.
            floors, short_floors, ones, tens = [], [], [], []
            for run in range(args.runs):
                floors.append(timed(floor))
                short_floors.append(timed(short_floor))
                ones.append(one.once())
                if run % 3 == 0:
                    tens.append(ten.once())
        finally:
            one.close()
            ten.close()
    print(f"floor (rasterize + PNG + the echo's answer + fsync): {summary(floors)}")
    print(f"floor with a two-line answer instead:               {summary(short_floors)}")
    print(f"pipeline, 1-page PDF:                               {summary(ones)}")
    print(f"pipeline, 10-page PDF:                              {summary(tens)}")
    for label, base in (("floor", floors), ("two-line floor", short_floors)):
        median_ratio = statistics.median(ones) / statistics.median(base)
        print(
            f"ratio pipeline (1 page) / {label}: medians {median_ratio:.2f}x, minima {min(ones) / min(base):.2f}x"
            " (target: <= 2.5x)"
        )


if __name__ == "__main__":
    main()
