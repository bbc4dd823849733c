"""Test helpers for native notebooks: the sample files, a .rmdoc built from .rm pages, and ink masks to compare
our drawing with a device's own export."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageFilter

DATA = Path(__file__).parent / "data" / "notebooks"
SUPERNOTE = DATA / "supernote"
REMARKABLE = DATA / "remarkable"

#: A pixel darker than this is ink: every Supernote pen grey (157, 201) counts, the paper and the faint
#: anti-aliased fringe of the export's vector strokes do not.
INK_BELOW = 230


def rmdoc(
    pages: Sequence[str | None],
    *,
    doc_id: str = "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
    name: str = "Notes",
    order: Sequence[int] | None = None,
    folder: Path = REMARKABLE,
) -> bytes:
    """A .rmdoc as the reMarkable desktop app exports it: ``.content`` (``cPages.pages`` with ids and ``idx``),
    ``.metadata``, and one ``<doc>/<page>.rm`` per page (``None``: a page never written on, without a file).
    ``order`` lists the pages' positions in the archive (to check that the .content order, not the zip's, wins)."""
    ids = [f"{index:08d}-1111-2222-3333-444444444444" for index in range(len(pages))]
    entries = [
        {
            "id": page_id,
            "idx": {"timestamp": "1:2", "value": f"b{chr(ord('a') + index)}"},
            "template": {"value": "Blank"},
        }
        for index, page_id in enumerate(ids)
    ]
    content = {"cPages": {"pages": entries, "original": {"value": -1}}, "fileType": "notebook", "formatVersion": 2}
    metadata = {"visibleName": name, "type": "DocumentType", "lastModified": "1733360000000", "parent": ""}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{doc_id}.metadata", json.dumps(metadata))
        for position in order if order is not None else range(len(pages)):
            source = pages[position]
            if source is not None:
                archive.writestr(f"{doc_id}/{ids[position]}.rm", (folder / source).read_bytes())
        archive.writestr(f"{doc_id}.content", json.dumps(content))
    return buffer.getvalue()


#: Where a Supernote's PDF export puts its strokes, in pixels of the device's bitmap, relative to where the
#: device's own bitmap of the same strokes has them. The export writes each stroke as vector paths in the device's
#: pixel coordinates, but a coordinate there names a pixel (its centre is at +½, as the device draws it) and in
#: the PDF a point (the pixel's top-left corner): rendered, the export's strokes lie half a pixel up and to the
#: left of the device's. Measured, not assumed: moving the export's strokes by quarter pixels (0 to 1 each way)
#: over the 15 pages with ink of the corpus's exports, the least summed difference is at (½, ½); the N5 and N6
#: pages fit best at or next to it, the older A5X/A6X files at ½ to 1. The template (the export's page image)
#: is a bitmap like ours and is not moved.
EXPORT_STROKE_OFFSET = (0.5, 0.5)


def export_pages(pdf: Path, size: tuple[int, int], *, aligned: bool = True) -> list[Image.Image]:
    """Each page of a Supernote's own PDF export rendered (anti-aliased, as any viewer does) at ``size``, our page's
    size; ``aligned``: with its strokes moved by :data:`EXPORT_STROKE_OFFSET` onto the device's pixel grid."""
    document = pdfium.PdfDocument(pdf.read_bytes())
    pages = []
    for page in document:
        width, _ = page.get_size()
        if aligned:
            _move_strokes(page, *(offset * width / size[0] for offset in EXPORT_STROKE_OFFSET))
        image = page.render(scale=size[0] / width).to_pil().convert("L")
        pages.append(image if image.size == size else image.resize(size))
    return pages


def _move_strokes(page: pdfium.PdfPage, right: float, down: float) -> None:
    """Moves every path of the page's annotations (the export's strokes: stamp annotations over the page image)."""
    for index in range(pdfium_c.FPDFPage_GetAnnotCount(page.raw)):
        annotation = pdfium_c.FPDFPage_GetAnnot(page.raw, index)
        try:
            for position in range(pdfium_c.FPDFAnnot_GetObjectCount(annotation)):
                path = pdfium_c.FPDFAnnot_GetObject(annotation, position)
                pdfium_c.FPDFPageObj_Transform(path, 1, 0, 0, 1, right, -down)  # PDF space: y points up
                if not pdfium_c.FPDFAnnot_UpdateObject(annotation, path):
                    raise ValueError(f"annotation {index} of the export could not be moved")
        finally:
            pdfium_c.FPDFPage_CloseAnnot(annotation)


def ink(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L")) < INK_BELOW


def widened(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel each way (3×3)."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MaxFilter(3))) > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def ink_iou(ours: Image.Image, device: Image.Image) -> tuple[float, float]:
    """Intersection over union of the two pages' ink: exact pixels, and with both masks widened by one pixel
    (the device's export is vector strokes with anti-aliased edges, our page its bitmap: edges differ by a pixel)."""
    a, b = ink(ours), ink(device)
    return iou(a, b), iou(widened(a), widened(b))


def stray_ink(ours: Image.Image, device: Image.Image) -> float:
    """The share of our ink farther than one pixel from any ink of the device's export (an erased stroke we drew
    would be such ink)."""
    a, b = ink(ours), ink(device)
    return 0.0 if not a.any() else float((a & ~widened(b)).sum()) / float(a.sum())


def supernotelib_pages(note: Path) -> list[tuple[Image.Image, Image.Image]]:
    """Each page as we draw it, and as supernotelib's own ImageConverter draws it without the template."""
    from supernotelib import decoder, parser
    from supernotelib.converter import ImageConverter, VisibilityOverlay, build_visibility_overlay

    from eink_llm.reader.supernote import _grey_converter

    notebook = parser.load(io.BytesIO(note.read_bytes()))
    theirs, ours = ImageConverter(notebook), _grey_converter(ImageConverter, decoder)(notebook)
    without_template = build_visibility_overlay(background=VisibilityOverlay.INVISIBLE)
    return [
        (ours.convert(i).convert("L"), theirs.convert(i, visibility_overlay=without_template).convert("L"))
        for i in range(notebook.get_total_pages())
    ]


def same_writing(ours: Image.Image, theirs: Image.Image) -> bool:
    """Whether the two pages have exactly the same writing: every mark darker than paper by the ink rule, except
    our template, which we draw in exactly :data:`TEMPLATE_GREY` (no pen draws that grey: the Supernote's are
    0, 157 and 201) and supernotelib's drawing of the writing does not have."""
    from eink_llm.economy import INK_THRESHOLD
    from eink_llm.reader.supernote import TEMPLATE_GREY

    mine = np.asarray(ours)
    return bool(
        ((mine < INK_THRESHOLD) & (mine != TEMPLATE_GREY)).tobytes() == (np.asarray(theirs) < INK_THRESHOLD).tobytes()
    )


def note_without_last_page(note: Path) -> bytes:
    """The notebook as it was before its last page was added: the same file with that page left out (written by
    supernotelib's own writer, which checks the result parses)."""
    from supernotelib import manipulator, parser

    notebook = parser.load(io.BytesIO(note.read_bytes()))
    notebook.pages.pop()
    return bytes(manipulator.reconstruct(notebook))
