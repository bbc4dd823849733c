"""Native notebooks: decode time per page, and how closely a Supernote page matches the device's own export.

Not a test: run it by hand when changing the notebook readers, and compare the figures with docs/notebooks.md.

    python benchmarks/notebooks.py [FOLDER ...] [--runs 3]

Each ``.note`` and ``.rm`` file found in the folders (default: the test samples in tests/data/notebooks) is
decoded ``--runs`` times in this process (``decode_bytes``, what the reading cage runs; the cage itself adds a
pipe round trip of a few milliseconds) and the best time per page is shown, for pages fitted to the default
long edge (1568 px, what is sent on). A ``.rmdoc`` of all the ``.rm`` pages is timed too. For each ``.note``
with a PDF of the same base name (the device's export), each page is drawn at the device's resolution and its
ink (pixels darker than 230) compared with the export rendered at the same size, its strokes moved half a pixel
onto the device's pixel grid (tests.notebooks.EXPORT_STROKE_OFFSET): intersection over union of the exact
pixels, of both masks widened by one pixel (edges are anti-aliased), and the share of our ink farther than a
pixel from any of the export's (an erased stroke we drew would show up there); and the exact-pixel figure
against the export rendered as it is, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eink_llm.reader import InputLimits, decode_bytes  # noqa: E402
from eink_llm.reader.files import _sniff  # noqa: E402
from tests.notebooks import (  # noqa: E402
    export_pages,
    ink_iou,
    rmdoc,
    same_writing,
    stray_ink,
    supernotelib_pages,
)

FULL = InputLimits(max_long_edge_px=4096, max_pages=100)
FITTED = InputLimits(max_pages=100)


def best_ms_per_page(name: str, data: bytes, runs: int) -> tuple[float, int]:
    kind = _sniff(data)
    assert kind is not None, name
    times, pages = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        document = decode_bytes(name, data, kind, FITTED)
        times.append(time.perf_counter() - start)
        pages = document.page_count
    return min(times) * 1000 / pages, pages


def same_as_supernotelib(note: Path) -> bool:
    """Whether our composition draws exactly supernotelib's writing (its ImageConverter without the template,
    which we draw light grey), by the page economy's ink rule."""
    return all(same_writing(ours, theirs) for ours, theirs in supernotelib_pages(note))


def compare(note: Path) -> list[tuple[int, float, float, float, float]]:
    """Per page: IoU exact, ±1px and stray ink against the export with its strokes on the device's pixel grid
    (tests.notebooks.EXPORT_STROKE_OFFSET), and IoU exact against the export rendered as it is."""
    document = decode_bytes(note.name, note.read_bytes(), "note", FULL)
    size = document.images[0].size
    aligned = export_pages(note.with_suffix(".pdf"), size)
    as_exported = export_pages(note.with_suffix(".pdf"), size, aligned=False)
    rows = []
    for index, (ours, theirs, unmoved) in enumerate(zip(document.images, aligned, as_exported, strict=True)):
        exact, widened = ink_iou(ours, theirs)
        rows.append((index + 1, exact, widened, stray_ink(ours, theirs), ink_iou(ours, unmoved)[0]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[ROOT / "tests" / "data" / "notebooks"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    notes = sorted(p for folder in args.folders for p in folder.rglob("*.note"))
    pages = sorted(p for folder in args.folders for p in folder.rglob("*.rm"))

    print(f"{'file':58} {'pages':>5} {'ms/page':>8}")
    per_page = []
    for path in [*notes, *pages]:
        ms, count = best_ms_per_page(path.name, path.read_bytes(), args.runs)
        per_page += [ms] * count
        print(f"{path.name[:58]:58} {count:5d} {ms:8.1f}")
    if pages:
        bundle = rmdoc([p.name for p in pages if p.parent == pages[0].parent], folder=pages[0].parent)
        ms, count = best_ms_per_page("all.rmdoc", bundle, args.runs)
        print(f"{'.rmdoc of the .rm pages above':58} {count:5d} {ms:8.1f}")
    if per_page:
        print(f"\nper page: median {statistics.median(per_page):.1f} ms, max {max(per_page):.1f} ms")

    if notes:
        same = [note.name for note in notes if not same_as_supernotelib(note)]
        verdict = "all pages" if not same else f"not in {same}"
        print(f"\nSupernote writing identical to supernotelib's own: {verdict}")
    compared = [n for n in notes if n.with_suffix(".pdf").exists()]
    if compared:
        print(f"\n{'Supernote page vs the device export':52} {'IoU exact':>9} {'IoU ±1px':>9} {'stray ink':>9}", end="")
        print(f" {'exact, export as is':>20}")
        for note in compared:
            for number, exact, widened, stray, unmoved in compare(note):
                print(f"{note.stem[:46]:46} p{number:<4} {exact:9.3f} {widened:9.3f} {stray:9.4f} {unmoved:20.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
