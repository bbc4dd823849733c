"""Defect 10 of issue 12: a page tree's real kids count, not its ``/Count``."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest

from eink_llm.errors import InputTooLargeError
from eink_llm.reader import InputLimits, read_input
from eink_llm.reader.pagetree import page_count
from tests import hostile, samples


@pytest.mark.parametrize(("claimed", "real"), [(1_000_000, 1), (1_000_000, 3), (50, 2), (1_000_000, 25)])
def test_the_real_count_whatever_the_claim(tmp_path: Path, claimed: int, real: int) -> None:
    path = hostile.make_lying_page_count(tmp_path / "lying.pdf", claimed=claimed, pages=real)
    document = pdfium.PdfDocument(path)
    try:
        assert len(document) == claimed  # what PDFium believes
        assert page_count(document, limit=20) == real
    finally:
        document.close()


def test_an_honest_count_is_taken_as_it_is(tmp_path: Path) -> None:
    document = pdfium.PdfDocument(samples.make_pdf(tmp_path / "q.pdf", pages=3))
    try:
        assert page_count(document, limit=20) == 3
    finally:
        document.close()


def test_a_lying_one_page_pdf_is_read_and_a_real_long_one_refused_with_its_real_count(tmp_path: Path) -> None:
    one = read_input(hostile.make_lying_page_count(tmp_path / "one.pdf"))
    assert one.page_count == 1 and len(one.images) == 1
    with pytest.raises(InputTooLargeError) as caught:
        read_input(hostile.make_lying_page_count(tmp_path / "long.pdf", pages=25), InputLimits(max_pages=20))
    assert "has 25 pages; the limit is 20" in caught.value.what
