"""Native notebooks (issue 14): Supernote .note drawn as the device shows it (checked against the device's own
PDF export), reMarkable v6 .rm drawn from its strokes, .rmdoc read in its .content order, hostile notebook
files as plain-words errors (also through the reading cage), the missing extra named, and the settle rule."""

from __future__ import annotations

import io
import itertools
import random
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rmscene import read_tree
from rmscene import scene_items as si

from eink_llm.config.schema import FolderConfig, WatchConfig
from eink_llm.economy import is_blank
from eink_llm.errors import CorruptInputError, InputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader import InputLimits, read_input
from eink_llm.reader.cage import Cage
from eink_llm.reader.supernote import TEMPLATE_GREY
from eink_llm.watcher import SettledFile, Watcher
from tests import notebooks
from tests.notebooks import REMARKABLE, SUPERNOTE, export_pages, ink, ink_iou, rmdoc, stray_ink

#: Pages at the device's own resolution (no fitting), to compare with its export pixel for pixel.
FULL = InputLimits(max_long_edge_px=4096)
CAGED = InputLimits(max_decode_memory_bytes=600 * 1024 * 1024, max_decode_cpu_seconds=20, max_decode_seconds=40)

SUPERNOTE_FILES = [
    "blank-a6x-3.26.40-two-pages",
    "stroke-n5-20260016-isolation-tools-colors-widths",
    "erase-n6-20230015-horizontal-1270",
    "turkish-a6x-20230015-handwriting-erase",
]


@pytest.fixture(scope="module")
def cage() -> Iterator[Cage]:
    with Cage(1, CAGED) as running:
        yield running


# --- Supernote -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", SUPERNOTE_FILES)
def test_supernote_pages_match_the_devices_own_export(stem: str) -> None:
    document = read_input(SUPERNOTE / f"{stem}.note", FULL)
    assert document.kind == "notebook"
    exported = export_pages(SUPERNOTE / f"{stem}.pdf", document.images[0].size)
    as_exported = export_pages(SUPERNOTE / f"{stem}.pdf", document.images[0].size, aligned=False)
    assert document.page_count == len(document.images) == len(exported)
    for number, (ours, theirs, unmoved) in enumerate(zip(document.images, exported, as_exported, strict=True), 1):
        assert ours.mode == "L"
        # The export as it is, its strokes half a pixel off the device's grid: close within a pixel.
        assert ink_iou(ours, unmoved)[1] >= 0.85, f"page {number}: ink IoU ±1px {ink_iou(ours, unmoved)[1]:.3f}"
        exact, widened = ink_iou(ours, theirs)
        assert exact >= 0.88, f"page {number}: exact-pixel ink IoU {exact:.3f} (±1px {widened:.3f})"
        assert widened >= 0.9, f"page {number}: ink IoU ±1px {widened:.3f} (exact pixels {exact:.3f})"
        # Nothing the device does not show (an erased stroke) is drawn.
        assert stray_ink(ours, theirs) <= 0.001, f"page {number}: ink the device does not show"


def test_supernote_landscape_stays_landscape_and_portrait_portrait() -> None:
    landscape = read_input(SUPERNOTE / "erase-n6-20230015-horizontal-1270.note")
    portrait = read_input(SUPERNOTE / "turkish-a6x-20230015-handwriting-erase.note")
    assert landscape.images[0].width > landscape.images[0].height
    assert portrait.images[0].width < portrait.images[0].height
    assert max(landscape.images[0].size) == 1568  # fitted to the long-edge limit like every page


def test_supernote_recognised_text_is_the_text_layer() -> None:
    document = read_input(SUPERNOTE / "turkish-a6x-20230015-handwriting-erase.note")
    assert "Şimdi ben buraya neden çıktım?" in document.text
    assert read_input(SUPERNOTE / "erase-n6-20230015-horizontal-1270.note").text == ""  # written without it
    cut = read_input(SUPERNOTE / "turkish-a6x-20230015-handwriting-erase.note", InputLimits(max_text_tokens=3))
    assert cut.text_cut is not None and len(cut.text) < len(document.text)


@pytest.mark.parametrize("stem", [*SUPERNOTE_FILES, "demo-a5x-20230015-1to10"])
def test_supernote_writing_is_supernotelibs_own_drawing_and_the_template_is_not_ink(stem: str) -> None:
    """Our faster composition (grey layers, Pillow for template pictures) draws exactly supernotelib's writing;
    the template (ruled lines here) stays visible in light grey but is no ink, so the economy crops to the
    writing and a page with nothing written on it is blank."""
    pages = notebooks.supernotelib_pages(SUPERNOTE / f"{stem}.note")
    for ours, theirs in pages:
        assert notebooks.same_writing(ours, theirs)
    if stem.startswith("demo"):
        ours, theirs = pages[0]
        template = np.asarray(ours) == TEMPLATE_GREY
        assert template.sum() > 20_000  # the ruled lines, drawn light...
        assert (np.asarray(theirs)[template] >= 254).mean() > 0.99  # ...where supernotelib's writing has none
        assert not is_blank(ours)


@pytest.mark.parametrize("stem", [*SUPERNOTE_FILES, "demo-a5x-20230015-1to10"])
def test_supernote_layers_decode_to_supernotelibs_own_bytes(stem: str) -> None:
    """Our run-length decoding (no queue, numpy) gives exactly supernotelib's grey bytes for every layer bitmap,
    with the decoder the page calls for and the other one; where supernotelib fails (a damaged or cut layer, a
    colour code the older decoder does not know), so do we."""
    from supernotelib import decoder, parser
    from supernotelib.converter import ImageConverter

    from eink_llm.reader.supernote import _ratta_rle

    notebook = parser.load(io.BytesIO((SUPERNOTE / f"{stem}.note").read_bytes()))
    width, height = notebook.get_width(), notebook.get_height()
    compared = 0
    for page in notebook.pages:
        horizontal = page.get_orientation() == "1090"
        size = (height, width) if horizontal else (width, height)
        for layer in page.get_layers():
            data = layer.get_content()
            if data is None or layer.get_protocol() != "RATTA_RLE":
                continue
            for x2, variant in itertools.product((False, True), (data, data[: len(data) // 2], data + data[:6])):
                rle = ImageConverter(notebook).find_decoder(layer, x2)
                try:
                    expected: object = rle.decode(variant, width, height, horizontal=horizontal)[0]
                except Exception:
                    expected = "fails"
                try:
                    got: object = _ratta_rle(
                        rle, rle._create_colormap(decoder.color.DEFAULT_COLORPALETTE), x2, variant, size, False
                    )
                except ValueError:
                    got = "fails"
                assert got == expected, (page.get_layers().index(layer), x2, len(variant))
                compared += expected != "fails"
    assert compared >= len(notebook.pages)


def test_a_supernote_layer_longer_than_its_page_is_refused_before_it_is_decoded() -> None:
    """More run-length pairs than the page has pixels can only fail (each pair adds a pixel or more); they are
    refused before the runs are collected, so a hostile layer costs no more than a page's worth of work."""
    from supernotelib import decoder

    from eink_llm.reader.supernote import _ratta_rle

    rle = decoder.RattaRleDecoder()
    colormap = rle._create_colormap(decoder.color.DEFAULT_COLORPALETTE)
    size = (1404, 1872)
    pixels = size[0] * size[1]
    with pytest.raises(ValueError, match=f"runs for a page of {pixels} pixels"):
        _ratta_rle(rle, colormap, False, b"\x62\x00" * (pixels + 2), size, False)
    # at the bound: decoded as before (one white pixel a pair: one pixel short, so the length check refuses it)
    with pytest.raises(ValueError, match="uncompressed bitmap length"):
        _ratta_rle(rle, colormap, False, b"\x62\x00" * (pixels - 1), size, False)
    assert _ratta_rle(rle, colormap, False, b"\x62\x00" * pixels, size, False) == bytes([255]) * pixels


def test_supernote_in_the_cage_is_the_same_as_in_process(cage: Cage) -> None:
    path = SUPERNOTE / "stroke-n5-20260016-isolation-tools-colors-widths.note"
    caged, here = read_input(path, CAGED, cage), read_input(path, CAGED)
    assert (caged.kind, caged.page_count, caged.text) == (here.kind, here.page_count, here.text)
    assert [a.tobytes() == b.tobytes() for a, b in zip(caged.images, here.images, strict=True)] == [True] * 5


# --- reMarkable ----------------------------------------------------------------------------------------------


def stroke_points(name: str) -> list[tuple[float, float]]:
    tree = read_tree(io.BytesIO((REMARKABLE / name).read_bytes()))
    return [(p.x, p.y) for item in tree.walk() if isinstance(item, si.Line) for p in item.points]


@pytest.mark.parametrize(
    "name",
    [
        "Color_and_tool_v3.14.4.rm",
        "Lines_v2.rm",
        "More_color_highlight_shader_v3.15.4.2.rm",
    ],
)
def test_remarkable_page_has_ink_where_its_strokes_are(name: str) -> None:
    document = read_input(REMARKABLE / name, FULL)
    assert document.kind == "notebook" and document.page_count == 1
    page = document.images[0]
    assert page.mode == "L" and page.height >= 1872 and page.width >= 1404  # the tablet's page, at its resolution
    points = stroke_points(name)
    mask = ink(page)
    rows, cols = np.nonzero(mask)
    # The ink spans what the strokes span (give or take the pen's width)...
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert abs((cols.max() - cols.min()) - (max(xs) - min(xs))) < 60
    assert abs((rows.max() - rows.min()) - (max(ys) - min(ys))) < 60
    # ...and the stroke points, placed by that span's centre (give or take a few pixels: the widest pen decides
    # where the ink's edge is), lie on ink.
    cx = (cols.min() + cols.max()) / 2 - (min(xs) + max(xs)) / 2
    cy = (rows.min() + rows.max()) / 2 - (min(ys) + max(ys)) / 2
    best = 0.0
    for dx in range(-8, 9):
        for dy in range(-8, 9):
            on_ink = [
                mask[min(max(round(y + cy + dy), 0), page.height - 1), min(max(round(x + cx + dx), 0), page.width - 1)]
                for x, y in points
            ]
            best = max(best, sum(on_ink) / len(on_ink))
    assert best >= 0.95


def test_remarkable_strokes_anchored_to_typed_text_are_placed_on_its_lines() -> None:
    # Its handwriting is anchored to characters of the typed text: in its own coordinates it lies above the
    # page's top (y < 0); placed on the text's lines, the page keeps the tablet's size.
    assert min(y for _, y in stroke_points("Normal_A_stroke_2_layers_v3.3.2.rm")) < 0
    document = read_input(REMARKABLE / "Normal_A_stroke_2_layers_v3.3.2.rm", FULL)
    assert document.images[0].size == (1404, 1872)
    assert "Normal bold italic" in document.text


def test_remarkable_pen_widths_and_highlighter_grey() -> None:
    lines = np.asarray(read_input(REMARKABLE / "Lines_v2.rm", FULL).images[0])
    # Lines_v2: the same ballpoint at thickness 1, 2 and 3: thicker settings give wider strokes.
    tree = read_tree(io.BytesIO((REMARKABLE / "Lines_v2.rm").read_bytes()))
    widths = {}
    for item in tree.walk():
        if isinstance(item, si.Line):
            y = round(sum(p.y for p in item.points) / len(item.points))
            x0 = round(min(p.x for p in item.points)) + 702 + 20
            column = lines[:, x0] < 230
            widths.setdefault(item.thickness_scale, []).append(int(column[max(y - 30, 0) : y + 30].sum()))
    thin, wide = np.mean(widths[1.0]), np.mean(widths[3.0])
    assert wide > thin
    shaded = np.asarray(read_input(REMARKABLE / "More_color_highlight_shader_v3.15.4.2.rm", FULL).images[0])
    light = int(((shaded >= 195) & (shaded <= 225)).sum())
    dark = int((shaded < 100).sum())
    assert light > 20_000 and dark > 1_000  # highlighter/shader light grey, the pens' writing dark


def test_remarkable_typed_text_and_a_file_from_a_newer_tablet() -> None:
    document = read_input(REMARKABLE / "Bold_Heading_Bullet_Normal.rm")
    assert "B is a letter of the alphabet" in document.text
    assert (ink(document.images[0])).sum() > 200  # the typed text is drawn on the page too
    newer = read_input(REMARKABLE / "test-crdt-ordering.rm")  # rmscene: "Some data has not been read"
    assert newer.text == "A12_Z"


def test_rmdoc_pages_follow_the_content_order(tmp_path: Path) -> None:
    path = tmp_path / "Physics.rmdoc"
    # The zip stores the pages in another order than the .content lists them.
    path.write_bytes(
        rmdoc(["Lines_v2.rm", None, "Color_and_tool_v3.14.4.rm", "Bold_Heading_Bullet_Normal.rm"], order=[3, 2, 0])
    )
    document = read_input(path, FULL)
    assert document.kind == "notebook" and document.page_count == 4
    alone = [read_input(REMARKABLE / n, FULL).images[0] for n in ("Lines_v2.rm", "Color_and_tool_v3.14.4.rm")]
    assert document.images[0].tobytes() == alone[0].tobytes()
    assert not ink(document.images[1]).any()  # a page never written on has no .rm: blank
    assert document.images[2].tobytes() == alone[1].tobytes()
    assert "B is a letter of the alphabet" in document.text


def test_rmdoc_idx_order_wins_over_the_list_order(tmp_path: Path) -> None:
    data = rmdoc(["Lines_v2.rm", "Color_and_tool_v3.14.4.rm"])
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    content_name = next(n for n in members if n.endswith(".content"))
    content = members[content_name].decode()
    content = content.replace('"value": "ba"', '"value": "bz"')  # page 1 now sorts after page 2
    members[content_name] = content.encode()
    path = tmp_path / "moved.rmdoc"
    with zipfile.ZipFile(path, "w") as target:
        for name, raw in members.items():
            target.writestr(name, raw)
    document = read_input(path, FULL)
    assert (
        document.images[0].tobytes() == read_input(REMARKABLE / "Color_and_tool_v3.14.4.rm", FULL).images[0].tobytes()
    )


# --- hostile and damaged files -------------------------------------------------------------------------------


def _zip_one(name: str, raw_deflate: bytes, declared: int, crc: int, flags: int = 0) -> bytes:
    """A zip with one deflated member whose headers declare ``declared`` bytes (a bomb may lie)."""
    encoded = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, 0, 0, crc, len(raw_deflate), declared, len(encoded), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        flags,
        8,
        0,
        0,
        crc,
        len(raw_deflate),
        declared,
        len(encoded),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    body = local + encoded + raw_deflate
    directory = central + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def _bomb(size: int) -> tuple[bytes, int]:
    """Raw deflate of ``size`` zero bytes (about a thousandth of that), and its CRC."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    pieces, crc = [], 0
    for _ in range(size >> 20):
        pieces.append(compressor.compress(block))
        crc = zlib.crc32(block, crc)
    pieces.append(compressor.flush())
    return b"".join(pieces), crc


def hostile_files(tmp_path: Path) -> dict[str, tuple[Path, type[InputError], str]]:
    note = (SUPERNOTE / "stroke-n5-20260016-isolation-tools-colors-widths.note").read_bytes()
    rm = (REMARKABLE / "Color_and_tool_v3.14.4.rm").read_bytes()
    deflated, crc = _bomb(200 << 20)
    files: dict[str, tuple[bytes, type[InputError], str]] = {
        "truncated.note": (note[: len(note) // 2], CorruptInputError, "damaged or not completely synced"),
        "newer.note": (
            note.replace(b"SN_FILE_VER_20260016", b"SN_FILE_VER_20990099", 1),
            UnsupportedInputError,
            "newer file format (version 20990099)",
        ),
        "garbage.note": (b"noteSN_FILE_VER_20230015" + bytes(range(256)) * 8, CorruptInputError, "damaged"),
        "truncated.rm": (rm[: len(rm) // 3], CorruptInputError, "damaged or not completely synced"),
        "old.rm": (b"reMarkable .lines file, version=5          " + bytes(100), UnsupportedInputError, "older format"),
        "honest-bomb.rmdoc": (_zip_one("doc/p.rm", deflated, 200 << 20, crc), InputTooLargeError, "unpack to more"),
        "lying-bomb.rmdoc": (_zip_one("doc.content", deflated, 1000, crc), CorruptInputError, "damaged"),
        "escape.rmdoc": (_zip_one("../../etc/x.content", *_small(b"{}")), UnsupportedInputError, "outside it"),
        "plain.rmdoc": (_zip_one("hello.txt", *_small(b"hello")), UnsupportedInputError, "not a reMarkable document"),
        "locked.rmdoc": (_zip_one("d.content", *_small(b"{}"), flags=1), CorruptInputError, "could not be unpacked"),
        "cut.rmdoc": (rmdoc(["Lines_v2.rm"])[:-30], CorruptInputError, "could not be opened"),
        "many.rmdoc": (rmdoc([None] * 25), InputTooLargeError, "25 pages; the limit is 20"),
    }
    out = {}
    for name, (data, error, words) in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, error, words)
    return out


def _small(data: bytes) -> tuple[bytes, int, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), len(data), zlib.crc32(data)


def test_hostile_notebooks_are_plain_errors_in_the_cage(tmp_path: Path, cage: Cage) -> None:
    for name, (path, error, words) in hostile_files(tmp_path).items():
        with pytest.raises(InputError) as info:
            read_input(path, CAGED, cage)
        assert type(info.value) is error, f"{name}: {type(info.value).__name__}: {info.value.what}"
        assert info.value.what.startswith(name) and words in info.value.what, f"{name}: {info.value.what}"
        assert info.value.todo and "Traceback" not in info.value.what
    # the cage lives on: a good notebook after all that
    assert read_input(REMARKABLE / "Lines_v2.rm", CAGED, cage).page_count == 1


def test_without_the_extra_the_error_names_it(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['supernotelib'] = None\n"  # as if the optional extra were not installed
        "sys.modules['rmscene'] = None\n"
        "from pathlib import Path\n"
        "from eink_llm.errors import UnsupportedInputError\n"
        "from eink_llm.reader import read_input\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        read_input(Path(path))\n"
        "    except UnsupportedInputError as exc:\n"
        "        print(exc.what, '|', exc.todo)\n"
    )
    doc = tmp_path / "d.rmdoc"
    doc.write_bytes(rmdoc(["Lines_v2.rm"]))
    paths = [SUPERNOTE / "blank-a6x-3.26.40-two-pages.note", REMARKABLE / "Lines_v2.rm", doc]
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout + result.stderr
    for line in lines:
        assert "'notebooks' extra" in line and "pip install 'eink-llm[notebooks]'" in line


# --- settling ------------------------------------------------------------------------------------------------


def test_settle_periods_per_folder_and_for_notebooks(tmp_path: Path) -> None:
    watch = WatchConfig(
        folders=[
            FolderConfig(path=tmp_path / "a"),
            FolderConfig(path=tmp_path / "b", settle_seconds=5, notebook_settle_seconds=90),
        ],
        settle_seconds=2,
        notebook_settle_seconds=30,
    )
    a, b = watch.folders
    assert watch.settle_seconds_for(a, "q.pdf") == 2 and watch.settle_seconds_for(a, "Physics.NOTE") == 30
    assert watch.settle_seconds_for(b, "q.pdf") == 5 and watch.settle_seconds_for(b, "x.rmdoc") == 90
    assert watch.settle_seconds_for(None, "page.rm") == 30
    quick = WatchConfig(settle_seconds=10, notebook_settle_seconds=1)
    assert quick.settle_seconds_for(None, "n.note") == 10  # never shorter than the folder's own


def test_a_notebook_saved_five_times_within_its_settle_period_is_reported_once(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    watch = WatchConfig(folders=[FolderConfig(path=root)], settle_seconds=0.1, notebook_settle_seconds=1.5)
    folder = watch.folders[0]
    seen: list[SettledFile] = []
    watcher = Watcher(
        [root],
        on_settled=seen.append,
        settle_seconds=0.1,
        polling=False,
        settle_for=lambda path, _root: watch.settle_seconds_for(folder, path.name),
    )
    watcher.start()
    try:
        note = root / "Physics.note"
        for save in range(5):  # the tablet saves every few hundred milliseconds while you write
            note.write_bytes(b"noteSN_FILE_VER_20230015" + bytes([save]) * (100 + save))
            (root / f"q{save}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                watcher.tick()
                time.sleep(0.02)
        assert [f.path.name for f in seen if f.path.suffix == ".note"] == []  # still being written
        assert sorted(f.path.name for f in seen) == [f"q{n}.png" for n in range(5)]  # others settle quickly
        deadline = time.monotonic() + 10
        while not any(f.path.suffix == ".note" for f in seen) and time.monotonic() < deadline:
            watcher.tick()
            time.sleep(0.02)
        for _ in range(20):
            watcher.tick()
            time.sleep(0.02)
    finally:
        watcher.stop()
    notes = [f for f in seen if f.path.name == "Physics.note"]
    assert len(notes) == 1 and notes[0].size == 24 + 104  # one report, of the last save
    assert notebooks.INK_BELOW == 230


def test_mutated_notebooks_end_in_a_document_or_a_typed_error(tmp_path: Path, cage: Cage) -> None:
    """The fuzzer of tests/test_fuzz_reader.py over notebook samples, through the cage: pages or an InputError."""
    from tests.test_fuzz_reader import mutate

    originals = {
        "two.note": (SUPERNOTE / "blank-a6x-3.26.40-two-pages.note").read_bytes(),
        "lines.rm": (REMARKABLE / "Lines_v2.rm").read_bytes(),
        "doc.rmdoc": rmdoc(["Lines_v2.rm", "test-crdt-ordering.rm"]),
    }
    rng = random.Random(20261205)
    outcomes: dict[str, int] = {}
    for case in range(60):
        name = list(originals)[case % 3]
        path = tmp_path / f"{case}-{name}"
        path.write_bytes(mutate(rng, originals[name], list(originals.values())))
        started = time.monotonic()
        try:
            document = read_input(path, CAGED, cage)
        except InputError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
        else:
            assert document.images and all(image.mode == "L" for image in document.images)
            outcomes["read"] = outcomes.get("read", 0) + 1
        assert time.monotonic() - started < CAGED.max_decode_seconds + 30
    assert sum(outcomes.values()) == 60 and outcomes.get("read", 0) > 0, outcomes


def test_a_page_with_impossible_points_is_an_input_error_in_process(tmp_path: Path) -> None:
    """Points at NaN, infinity and 10¹² with absurd widths (written with rmscene's own writer): no ValueError or
    OverflowError escapes the reader, even outside the cage; the page is refused by its size."""
    from rmscene import read_blocks, write_blocks
    from rmscene.scene_stream import SceneLineItemBlock

    blocks = list(read_blocks(io.BytesIO((REMARKABLE / "Lines_v2.rm").read_bytes())))
    lines = [block.item.value for block in blocks if isinstance(block, SceneLineItemBlock) and block.item.value]
    for number, point in enumerate(p for line in lines for p in line.points):
        point.x = (float("nan"), float("inf"), 1e12)[number % 3]
        point.width = 60_000
    out = io.BytesIO()
    write_blocks(out, blocks)
    path = tmp_path / "impossible.rm"
    path.write_bytes(out.getvalue())
    with pytest.raises(InputTooLargeError, match=r"impossible\.rm has ink spread over"):
        read_input(path)
