"""What a PDF with a huge text layer costs to read: bounded (the reader) against reading all of it.

Not a test: run it by hand when changing reader/pdf.py, and compare the figures with docs/page-economy.md
("What the whole request may cost").

    python benchmarks/text_layer.py [--pages 20] [--mb-per-page 2] [--budget 8000] [--runs 3]

The PDF is the issue 18 case: every page shows the same Flate-compressed content stream of invisible text lines
(~1,800 characters per text object), so a file of a few kB holds tens of MB of text. Printed: the reader's time
(``read_input`` with ``context.question_tokens`` as the budget, everything a page costs: parsing, drawing,
encoding, text), the time PDFium's text pages take alone when read whole (what the reader did before the budget),
and how much text each gives. Minimum of ``--runs``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import pypdfium2 as pdfium

from eink_llm.reader import InputLimits, read_input

LINE = b"The quick brown fox jumps over the lazy dog. " * 40


def make_pdf(pages: int, chars_per_page: int) -> bytes:
    line = b"(" + LINE + b") '\n"
    text = b"BT 3 Tr /F1 9 Tf 40 760 Td 11 TL\n" + line * (chars_per_page // len(LINE)) + b"ET\n"
    stream = zlib.compress(b"4 w 60 700 m 300 740 l 540 700 l S\n" + text, 9)
    kids = b" ".join(b"%d 0 R" % (5 + n) for n in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
        *[page + b"/Contents 4 0 R >>"] * pages,
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def whole_text(path: Path) -> tuple[float, int]:
    """Seconds PDFium's text pages take when every page is read whole, and the characters they hold."""
    document = pdfium.PdfDocument(path)
    chars = 0
    started = time.perf_counter()
    try:
        for page in document:
            textpage = page.get_textpage()
            chars += len(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        document.close()
    return time.perf_counter() - started, chars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--mb-per-page", type=float, default=2.0)
    parser.add_argument("--budget", type=int, default=8000, help="context.question_tokens")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "text-layer.pdf"
        path.write_bytes(make_pdf(args.pages, int(args.mb_per_page * 1_000_000)))
        size = path.stat().st_size
        limits = InputLimits(max_text_tokens=args.budget)
        bounded = []
        for _ in range(args.runs):
            started = time.perf_counter()
            document = read_input(path, limits)
            bounded.append(time.perf_counter() - started)
        whole = [whole_text(path) for _ in range(args.runs)]
    print(f"PDF: {size:,} bytes, {args.pages} pages, budget {args.budget:,} tokens")
    print(f"{'':34}{'seconds':>9}{'characters':>14}")
    print(f"{'reader, whole input (bounded)':34}{min(bounded):9.2f}{len(document.text):14,}")
    print(f"{'PDFium text pages read whole':34}{min(t for t, _ in whole):9.2f}{whole[0][1]:14,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
