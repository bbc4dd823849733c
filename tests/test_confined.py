"""The parts that keep the daemon inside its folder, directly: the no-follow walk (confined.py), the hash check
on read (reader/files.py), writes through a verified folder and their error messages (atomic.py), and names
capped in bytes (naming.py). The daemon-level tests are in test_folder_guard.py."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from eink_llm import atomic, confined
from eink_llm.atomic import NAME_MAX, TEMP_OVERHEAD, atomic_write
from eink_llm.errors import InputChangedError, OutputError
from eink_llm.naming import MAX_STEM_BYTES, new_conversation_id, output_name, sanitize_stem
from eink_llm.reader import read_input, records_input
from eink_llm.reader.limits import DEFAULT_LIMITS
from tests import samples, test_folder_guard


def test_the_temp_name_overhead_is_what_the_daemon_tests_assume(tmp_path: Path) -> None:
    final = tmp_path / "RESPONSE_x.pdf"
    temp = atomic.temp_name_for(final)
    assert len(temp.name) - len(final.name) == TEMP_OVERHEAD == test_folder_guard.TEMP_OVERHEAD
    assert NAME_MAX == test_folder_guard.NAME_MAX


def test_the_longest_possible_names_fit_name_max() -> None:
    cid = new_conversation_id()
    for stem in ("😀" * 100, "a" * 500, "語" * 200, "👨\u200d👩\u200d👧" * 40, "🇩🇪" * 100, "é" * 300):
        for kind in ("RESPONSE", "ERROR"):
            name = output_name(kind, cid, 999_999, stem)  # type: ignore[arg-type]
            assert len(name.encode()) + TEMP_OVERHEAD <= NAME_MAX, name
    assert len(sanitize_stem("😀" * 57).encode()) <= MAX_STEM_BYTES
    assert sanitize_stem("😀" * 57) == "😀" * 40
    # never half a character, and (for these) never half a grapheme
    assert sanitize_stem("👍🏽" * 50) == "👍🏽" * 20
    assert sanitize_stem("🇩🇪" * 50) == "🇩🇪" * 20
    family = "👨\u200d👩\u200d👧"
    assert sanitize_stem(family * 40) == family * 8
    assert sanitize_stem("e\u0301" * 100, max_bytes=7) == "é" * 3  # NFC first: 2 bytes each
    assert sanitize_stem("x\udcff y") == "x_ y"  # a name's non-UTF-8 byte is not copied into ours


def test_an_overlong_name_says_so_not_disk_full(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as info:
        atomic_write(tmp_path / ("x" * 250 + ".pdf"), b"data")
    assert info.value.errno == errno.ENAMETOOLONG
    assert "too long" in info.value.what and "disk" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_writes_and_reads_never_pass_a_link_below_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError) as info:
        atomic_write(root / "sub" / "RESPONSE_x.pdf", b"data", root=root)
    assert "link" in info.value.what
    assert not list(outside.iterdir())
    page = samples.make_png(outside / "q.png", (50, 50))
    (root / "q.png").symlink_to(page)
    for path in (root / "q.png", root / "sub" / "q.png"):
        with pytest.raises(InputChangedError, match="link"):
            read_input(path, root=root)
        assert not records_input(path, "0" * 64, DEFAULT_LIMITS, root=root)
    # a root that is itself a link is fine: only what lies below it is walked without following
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(outside, target_is_directory=True)
    assert read_input(linked_root / "q.png", root=linked_root).page_count == 1
    atomic_write(linked_root / "RESPONSE_y.pdf", b"data", root=linked_root)
    assert (outside / "RESPONSE_y.pdf").read_bytes() == b"data"
    with pytest.raises(OSError):
        confined.open_folder(root, root / ".." / "outside")


def test_bytes_that_differ_from_the_queued_hash_are_refused(tmp_path: Path) -> None:
    page = samples.make_png(tmp_path / "q.png", (50, 50))
    good = hashlib.sha256(page.read_bytes()).hexdigest()
    assert read_input(page, root=tmp_path, sha256=good).page_count == 1
    with pytest.raises(InputChangedError, match="changed after it was queued"):
        read_input(page, root=tmp_path, sha256="0" * 64)
