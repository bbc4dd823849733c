"""Our answers coming back: the reader recognises the conversation from the PDF's metadata, under any name.

Answers are rendered for real and read back with :func:`read_input`. To get PDFs that carry only one of the
three records (as after a tool that dropped the others), the others are blanked in the bytes with same-length
replacements, which keeps the file's cross-reference table valid. Hostile XMP packets are fed to the parser
directly and inside real PDFs.
"""

from __future__ import annotations

import io
import os
import random
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from eink_llm.naming import output_name
from eink_llm.reader import InputLimits, PdfOrigin, read_input, records_input
from eink_llm.reader import origin as reader_origin
from eink_llm.reader.origin import MAX_PACKET_BYTES, find_origin, origin_from_xmp, xmp_packets
from eink_llm.render import RenderMeta, render_answer
from tests import samples

CONVERSATION = "conv_20250102_140300_1a2b3c4d"
META = RenderMeta("question", CONVERSATION, 12, datetime(2025, 1, 2, 14, 3, tzinfo=UTC), "test-model")
NAMESPACE = "https://github.com/eink-llm/ns/1.0/"
LIMITS = InputLimits()


@pytest.fixture(scope="module")
def answer_pdf() -> bytes:
    return render_answer("An answer with a reply page.", META)


def read(tmp_path: Path, data: bytes, name: str = "My notebook.pdf") -> PdfOrigin | None:
    path = tmp_path / name
    path.write_bytes(data)
    document = read_input(path)
    assert document.kind == "pdf" and document.page_count >= 1
    return document.origin


def info_dict(pdf: bytes) -> tuple[int, int]:
    match = re.search(rb"<<\n/Author \(eink-llm\).*?>>", pdf, re.S)
    assert match is not None
    return match.start(), match.end()


def without_info_records(pdf: bytes) -> bytes:
    """Our Info keys renamed and every id in the Info dictionary (Subject, Keywords) broken; same length."""
    start, end = info_dict(pdf)
    info = pdf[start:end].replace(b"/EinkLLM", b"/XinkLLM").replace(b"conv_", b"xxxx_")
    return pdf[:start] + info + pdf[end:]


def without_custom_info(pdf: bytes) -> bytes:
    start, end = info_dict(pdf)
    return pdf[:start] + pdf[start:end].replace(b"/EinkLLM", b"/XinkLLM") + pdf[end:]


def without_xmp(pdf: bytes) -> bytes:
    """The packet's namespace changed, so nothing in it is ours any more."""
    changed = pdf.replace(NAMESPACE.encode(), b"https://example.org/xx/ns/1.0/xxxx"[: len(NAMESPACE)])
    assert changed != pdf
    return changed


def packet(body: str) -> bytes:
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{body}<?xpacket end="w"?>'.encode()


# -- round trips ---------------------------------------------------------------------------------------------


def test_origin_round_trip_under_our_name_and_after_a_rename(tmp_path: Path, answer_pdf: bytes) -> None:
    ours = output_name("RESPONSE", CONVERSATION, 12, "question")
    assert read(tmp_path, answer_pdf, ours) == PdfOrigin(CONVERSATION, 12, "info", unchanged=True)
    # Tablets rename on export: the name says nothing any more, the metadata still does.
    renamed = read(tmp_path, answer_pdf, "Notebook 2025-01-03.pdf")
    assert renamed == PdfOrigin(CONVERSATION, 12, "info", unchanged=True)


def test_xmp_only_pdf(tmp_path: Path, answer_pdf: bytes) -> None:
    assert read(tmp_path, without_info_records(answer_pdf)) == PdfOrigin(CONVERSATION, 12, "xmp")


def test_info_only_pdf(tmp_path: Path, answer_pdf: bytes) -> None:
    assert read(tmp_path, without_xmp(answer_pdf)) == PdfOrigin(CONVERSATION, 12, "info")


def test_subject_and_keywords_only(tmp_path: Path, answer_pdf: bytes) -> None:
    assert read(tmp_path, without_xmp(without_custom_info(answer_pdf))) == PdfOrigin(CONVERSATION, 12, "keywords")


def test_nothing_left_means_no_origin(tmp_path: Path, answer_pdf: bytes) -> None:
    assert read(tmp_path, without_xmp(without_info_records(answer_pdf))) is None


def test_foreign_pdfs_and_images_have_no_origin(tmp_path: Path) -> None:
    assert read_input(samples.make_pdf(tmp_path / "export.pdf")).origin is None
    assert read_input(samples.make_png(tmp_path / "page.png")).origin is None


def test_a_broken_info_id_falls_back_to_the_xmp(tmp_path: Path, answer_pdf: bytes) -> None:
    start, end = info_dict(answer_pdf)
    info = answer_pdf[start:end].replace(b"(conv_20250102", b"(conv_2025010X")  # Info key and Subject
    found = read(tmp_path, answer_pdf[:start] + info + answer_pdf[end:])
    assert found == PdfOrigin(CONVERSATION, 12, "xmp")


def test_missing_exchange_is_taken_from_a_later_record(tmp_path: Path, answer_pdf: bytes) -> None:
    start, end = info_dict(answer_pdf)
    info = answer_pdf[start:end].replace(b"/EinkLLMExchange", b"/XinkLLMExchange")
    found = read(tmp_path, answer_pdf[:start] + info + answer_pdf[end:])
    assert found == PdfOrigin(CONVERSATION, 12, "info")


# -- the XMP parser ------------------------------------------------------------------------------------------


def test_xmp_attribute_form_and_other_prefix() -> None:
    body = (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description rdf:about="" xmlns:e="{NAMESPACE}" '
        f"e:conversation='{CONVERSATION}' e:exchange=\"4\"/></rdf:RDF></x:xmpmeta>"
    )
    assert origin_from_xmp(b"%PDF-1.4 junk " + packet(body)) == PdfOrigin(CONVERSATION, 4, "xmp")


def test_newest_packet_wins() -> None:
    older = packet(f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>{CONVERSATION}</einkllm:conversation></d>')
    newer_id = "conv_20260101_000000_0000beef"
    newer = packet(f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>{newer_id}</einkllm:conversation></d>')
    found = origin_from_xmp(older + b"\n% incremental update\n" + newer)
    assert found == PdfOrigin(newer_id, None, "xmp")


HOSTILE = [
    b"",
    b"<?xpacket begin",  # no end
    packet(""),
    packet(f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>&xxe;</einkllm:conversation></d>'),
    packet(
        '<!DOCTYPE d [<!ENTITY a "conv_20250102_140300_1a2b3c4d"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>&b;</einkllm:conversation></d>'
    ),
    packet(f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>conv_2025_bad</einkllm:conversation></d>'),
    packet(f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation><einkllm:conversation>'),
    packet(f'<d xmlns:einkllm="{NAMESPACE}" einkllm:conversation="{CONVERSATION}'),  # unterminated attribute
    packet(f'<d xmlns:einkllm="{NAMESPACE}">' + "<einkllm:conversation " + "a" * 100_000 + ">"),
    packet("x" * (MAX_PACKET_BYTES + 10) + f'xmlns:einkllm="{NAMESPACE}" einkllm:conversation="{CONVERSATION}"'),
    packet(f'<d xmlns:einkllm="{NAMESPACE}">\xff\xfe\x00'.encode("latin-1").decode("latin-1")),
    b"<?xpacket begin\xff\xfe" + bytes(range(256)) * 10 + b"<?xpacket end",
    b"<?xpacket begin" * 100_000,
    (b"<?xpacket begin" + b"x" * 1000) * 5000 + b"<?xpacket end",
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_packets_are_not_origins(data: bytes) -> None:
    started = time.perf_counter()
    assert origin_from_xmp(data) is None
    assert time.perf_counter() - started < 2.0


def test_hostile_exchange_numbers_are_dropped() -> None:
    for bad in ("-1", "0", "99999999999", "3.5", "٣", "3 ", " ", "1e3", "&#51;"):
        body = (
            f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>{CONVERSATION}</einkllm:conversation>'
            f"<einkllm:exchange>{bad}</einkllm:exchange></d>"
        )
        found = origin_from_xmp(packet(body))
        expected = 3 if bad == "3 " else None  # surrounding space is XML formatting, not part of the value
        assert found == PdfOrigin(CONVERSATION, expected, "xmp"), bad


def test_fuzzed_packets_never_raise() -> None:
    rng = random.Random(20250102)
    base = packet(
        f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>{CONVERSATION}</einkllm:conversation>'
        "<einkllm:exchange>3</einkllm:exchange></d>"
    )
    alphabet = b'<>/"=:& \x00\xff?xpacket' + CONVERSATION.encode()
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[at] = rng.choice(alphabet)
            elif action < 0.7:
                del data[at : at + rng.randint(1, 20)]
            else:
                data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        found = origin_from_xmp(bytes(data))
        assert found is None or (found.conversation_id.startswith("conv_") and found.source == "xmp")
        found = find_origin({"Subject": data.decode("latin-1"), "Keywords": data.decode("latin-1")}, bytes(data))
        assert found is None or found.conversation_id.startswith("conv_")


def test_packets_are_capped() -> None:
    many = b"".join(packet(str(n)) for n in range(100))
    assert len(xmp_packets(many)) == reader_origin.MAX_PACKETS
    assert xmp_packets(packet("y" * (MAX_PACKET_BYTES + 1))) == []


def test_keywords_with_two_different_ids_are_not_trusted() -> None:
    other = "conv_20260101_000000_0000beef"
    assert find_origin({"Keywords": f"conversation {CONVERSATION}, conversation {other}"}, b"") is None
    assert find_origin({"Keywords": f"eink-llm, exchange 5, conversation {CONVERSATION}"}, b"") == PdfOrigin(
        CONVERSATION, 5, "keywords"
    )


def test_hostile_packet_inside_a_real_pdf_does_not_cost_the_page(tmp_path: Path, answer_pdf: bytes) -> None:
    bomb = packet(
        '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<d xmlns:einkllm="{NAMESPACE}"><einkllm:conversation>&b;</einkllm:conversation></d>'
    )
    # Appended after the end: an incremental update's place, so it is the newest packet and is looked at first.
    found = read(tmp_path, without_info_records(answer_pdf) + b"\n" + bomb + b"\n")
    assert found == PdfOrigin(CONVERSATION, 12, "xmp")  # the bomb is skipped, our own packet still counts


@pytest.mark.timeout(10)  # a hang guard, not a speed test: the old patterns took ~10 s on this packet
def test_a_packet_built_to_make_the_patterns_backtrack_is_read_in_linear_time() -> None:
    prefixes = "".join(f' xmlns:p{i}="{NAMESPACE}"' for i in range(300))
    body = ("<p1:conversation>" + " " * 200) * 95 + (' p2:conversation = "' + "a" * 199) * 95
    packet = f'<?xpacket begin="x"?><x:xmpmeta{prefixes}>{body}<?xpacket end="w"?>'
    data = b"%PDF-1.4\n" + packet.encode() * 8
    for _ in range(20):
        assert origin_from_xmp(data) is None


# -- the folder remembers: the input answered, and whether our pages are unchanged -----------------------------


def test_an_answer_records_its_input_and_stays_unchanged_until_written_on(tmp_path: Path) -> None:
    sha = "0123456789abcdef" * 4
    pdf = render_answer("An answer.", replace(META, input_sha256=sha))
    ours = tmp_path / output_name("RESPONSE", CONVERSATION, 12, "question")
    ours.write_bytes(pdf)
    assert records_input(ours, sha, LIMITS) and not records_input(ours, "f" * 64, LIMITS)
    assert read_input(ours).origin == PdfOrigin(CONVERSATION, 12, "info", unchanged=True)
    # Copied by a sync client, byte for byte: still unchanged.
    assert read(tmp_path, pdf, "Copy.pdf") == PdfOrigin(CONVERSATION, 12, "info", unchanged=True)
    # Saved again by another program (here pdfium), even with the same pages: changed, so treated as written on.
    document = pdfium.PdfDocument(pdf)
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    assert read(tmp_path, buffer.getvalue()) == PdfOrigin(CONVERSATION, 12, "info")
    # A pen stroke on the reply page: ours still, but changed. The program that saved it rewrote the Info
    # dictionary in its own way, so the plain entry is gone: written on, it is a question, not a record.
    inked = samples.add_vector_ink(ours, tmp_path / "inked.pdf", 1, [(100, 300, 80, 3)])
    found = read_input(inked).origin
    assert found is not None and found.conversation_id == CONVERSATION and not found.unchanged
    assert not records_input(inked, sha, LIMITS)


def test_only_our_answers_record_an_input_and_only_regular_files_are_read(tmp_path: Path, answer_pdf: bytes) -> None:
    sha = "ab" * 32
    assert not records_input(samples.make_pdf(tmp_path / "export.pdf"), sha, LIMITS)
    assert not records_input(tmp_path / "missing.pdf", sha, LIMITS)
    answer = tmp_path / "answer.pdf"
    answer.write_bytes(render_answer("An answer.", replace(META, input_sha256=sha)))
    assert records_input(answer, sha, LIMITS)
    assert not records_input(answer, sha, InputLimits(max_file_bytes=100))  # over the size limit: not read
    fifo = tmp_path / "RESPONSE_fifo.pdf"
    os.mkfifo(fifo)
    assert not records_input(fifo, sha, LIMITS)  # would block a reader forever
    link = tmp_path / "RESPONSE_link.pdf"
    link.symlink_to("/dev/zero")
    assert not records_input(link, sha, LIMITS)  # a device, not a file
    # A wrong digest, or one byte changed anywhere, and the file is no longer "ours, unchanged".
    start, end = info_dict(answer_pdf)
    assert re.search(rb"/EinkLLMDigest \([0-9a-f]{32}\)", answer_pdf[start:end])
    info = re.sub(rb"/EinkLLMDigest \([0-9a-f]{32}\)", b"/EinkLLMDigest (" + b"f" * 32 + b")", answer_pdf[start:end])
    found = read(tmp_path, answer_pdf[:start] + info + answer_pdf[end:])
    assert found is not None and not found.unchanged
    where = answer_pdf.index(b"/Producer")
    found = read(tmp_path, answer_pdf[:where] + b"/Producex" + answer_pdf[where + 9 :])
    assert found is not None and not found.unchanged
    assert read(tmp_path, answer_pdf) == PdfOrigin(CONVERSATION, 12, "info", unchanged=True)
