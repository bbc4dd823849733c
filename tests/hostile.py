"""Hostile input files for the reading cage's tests (issue 12), generated small and fast, never committed.

Each ``make_*`` writes one file and returns its path. The bombs are compressed by hand: a deflate stream of
gigabytes of one repeated byte is the same few-hundred-byte block (made once, with a full flush, so each block
stands alone) written again and again, plus the zlib header and checksum, so a 2 GB bomb costs milliseconds to
make, not the seconds zlib would take to compress it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.samples import _raw_pdf

_CHUNK = 1 << 20
_ADLER_MOD = 65521


def deflate_repeated(value: int, total: int) -> bytes:
    """A zlib stream that inflates to ``total`` bytes, each ``value`` (0-255)."""
    pieces = [b"\x78\xda"]  # zlib header: deflate, 32 kB window, best compression
    full, rest = divmod(total, _CHUNK)
    if full:
        pieces.append(_block(bytes([value]) * _CHUNK) * full)
    if rest:
        pieces.append(_block(bytes([value]) * rest))
    pieces.append(b"\x03\x00")  # a final, empty block (fixed Huffman codes: just the end-of-block code)
    pieces.append(struct.pack(">I", _adler_repeated(value, total)))
    return b"".join(pieces)


def _block(data: bytes) -> bytes:
    """``data`` as raw deflate blocks that stand alone (no back-reference before them), not final."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def _adler_repeated(value: int, count: int) -> int:
    """Adler-32 of ``count`` bytes of ``value``: a = 1 + n·v, b = n + v·n(n+1)/2 (mod 65521)."""
    a = (1 + count * value) % _ADLER_MOD
    b = (count + value * count * (count + 1) // 2) % _ADLER_MOD
    return (b << 16) | a


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (dictionary, len(data), data)


def _one_page(content: bytes, resources: bytes = b"<< >>", extra: tuple[bytes, ...] = (), count: int = 1) -> bytes:
    return _raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 447 596] /Resources %s /Contents 4 0 R >>" % resources,
            content,
            *extra,
        ]
    )


def make_soft_mask_bomb(path: Path, side: int = 46000) -> Path:
    """A ~2 MB PDF whose one 10×10 picture has a ``side``×``side`` 8-bit soft mask (2.1 GB decoded at 46000).
    The picture itself is tiny, so the check on embedded picture sizes does not see the mask."""
    drawing = _stream(b"", b"q 100 0 0 100 100 400 cm /Im0 Do Q")
    picture = _stream(
        b"/Type /XObject /Subtype /Image /Width 10 /Height 10 /BitsPerComponent 8 /ColorSpace /DeviceGray /SMask 6 0 R",
        bytes(100),
    )
    mask = _stream(
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /BitsPerComponent 8 /ColorSpace /DeviceGray "
        b"/Filter /FlateDecode" % (side, side),
        deflate_repeated(0, side * side),
    )
    path.write_bytes(_one_page(drawing, b"<< /XObject << /Im0 5 0 R >> >>", (picture, mask)))
    return path


def make_content_bomb(path: Path, inflated: int = 1_500_000_000) -> Path:
    """A ~1.5 MB PDF whose page's content stream inflates to ``inflated`` bytes (of spaces)."""
    content = _stream(b"/Filter /FlateDecode", deflate_repeated(ord(" "), inflated))
    path.write_bytes(_one_page(content))
    return path


def make_many_operations(path: Path, operations: int = 2_000_000) -> Path:
    """A small PDF whose one page draws ``operations`` path operations (move, line, stroke: 3 per path)."""
    paths = [b"%d %d m %d %d l S\n" % (i % 400, i % 577, (i * 7) % 400, (i * 13) % 577) for i in range(1000)]
    body = b"".join(paths) * max(1, operations // 3000)
    content = _stream(b"/Filter /FlateDecode", zlib.compress(body, 9))
    path.write_bytes(_one_page(content))
    return path


def make_lying_page_count(path: Path, claimed: int = 1_000_000, pages: int = 1) -> Path:
    """A PDF of ``pages`` real pages (each with a pen stroke) whose page tree says it has ``claimed`` pages."""
    content = _stream(b"", b"4 w 60 500 m 380 440 l S 60 460 m 300 420 l S")
    if pages == 1:
        path.write_bytes(_one_page(content, count=claimed))
        return path
    first_page = 4  # objects: 1 catalog, 2 page tree, 3 content, then the pages
    kids = b" ".join(b"%d 0 R" % (first_page + n) for n in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 447 596] /Contents 3 0 R >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, claimed),
        content,
        *([page] * pages),
    ]
    path.write_bytes(_raw_pdf(objects))
    return path


def make_png_memory_bomb(path: Path, side: int = 6000) -> Path:
    """A ~0.3 MB PNG of ``side``×``side`` 16-bit RGBA pixels: within the pixel limit (36 megapixels at 6000),
    but decoding and flattening it onto white needs some 500 MB."""
    body = deflate_repeated(0, side * (1 + side * 8))  # each row: filter byte 0, then transparent black pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)  # 16-bit, RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
