"""The reading cage on its own: each breach in plain words, a fresh process after it, limits that follow the
config, two readers at once, and the same pages as decoding in-process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eink_llm.errors import CorruptInputError, InputBeyondLimitsError, ReaderUnavailableError
from eink_llm.reader import InputLimits, read_input
from eink_llm.reader.cage import Cage
from tests import hostile, samples
from tests.harness import wait_until

LIMITS = InputLimits(max_decode_memory_bytes=300 * 1024 * 1024, max_decode_cpu_seconds=1, max_decode_seconds=20)


@pytest.fixture()
def cage() -> Iterator[Cage]:
    with Cage(1, LIMITS) as running:
        yield running


def test_pages_are_the_same_as_decoded_in_process(tmp_path: Path, cage: Cage) -> None:
    for path in (
        samples.make_pdf(tmp_path / "q.pdf", pages=3),
        samples.make_png(tmp_path / "q.png", size=(600, 800)),
        samples.make_rotated_jpeg(tmp_path / "q.jpg"),
    ):
        caged = read_input(path, LIMITS, cage)
        here = read_input(path, LIMITS)
        assert (caged.kind, caged.text, caged.page_count, caged.origin) == (
            here.kind,
            here.text,
            here.page_count,
            here.origin,
        )
        assert [(i.mode, i.size, i.tobytes()) for i in caged.images] == [
            (i.mode, i.size, i.tobytes()) for i in here.images
        ]  # pixel for pixel (Pillow's == also compares metadata such as a JPEG's EXIF, which is not carried)


def test_memory_breach_says_which_option_and_a_fresh_process_reads_the_next(tmp_path: Path, cage: Cage) -> None:
    first = cage.pids()
    with pytest.raises(InputBeyondLimitsError) as caught:
        read_input(hostile.make_content_bomb(tmp_path / "bomb.pdf"), LIMITS, cage)
    assert "needs more memory to read than the 300.0 MB" in caught.value.what
    assert "input.max_decode_memory_mb" in caught.value.todo
    assert caught.value.detail and "reading process" in caught.value.detail
    good = read_input(samples.make_pdf(tmp_path / "good.pdf", pages=1), LIMITS, cage)
    assert good.page_count == 1
    assert cage.pids() and cage.pids() != first  # replaced, not reused
    assert not any(Path(f"/proc/{pid}").exists() for pid in first if _alive(pid))


def test_cpu_time_breach(tmp_path: Path, cage: Cage) -> None:
    busy = hostile.make_many_operations(tmp_path / "busy.pdf")
    started = time.monotonic()
    with pytest.raises(InputBeyondLimitsError) as caught:
        read_input(busy, LIMITS, cage)
    assert "computing time" in caught.value.what and "input.max_decode_cpu_seconds" in caught.value.todo
    assert time.monotonic() - started < LIMITS.max_decode_seconds


def test_wall_time_breach(tmp_path: Path) -> None:
    limits = InputLimits(max_decode_cpu_seconds=60, max_decode_seconds=0.5)
    with Cage(1, limits) as cage:
        cage.decode("warm.pdf", samples.make_pdf(tmp_path / "warm.pdf", 1).read_bytes(), "pdf", limits)  # started
        started = time.monotonic()
        with pytest.raises(InputBeyondLimitsError) as caught:
            read_input(hostile.make_many_operations(tmp_path / "busy.pdf"), limits, cage)
        assert time.monotonic() - started < 5
    assert "took longer than 0.5 seconds" in caught.value.what and "input.max_decode_seconds" in caught.value.todo


def test_a_changed_memory_limit_starts_a_process_with_it(tmp_path: Path, cage: Cage) -> None:
    path = samples.make_pdf(tmp_path / "q.pdf", pages=1)
    read_input(path, LIMITS, cage)
    before = cage.pids()
    bigger = InputLimits(max_decode_memory_bytes=400 * 1024 * 1024)
    read_input(path, bigger, cage)
    after = cage.pids()
    assert after and after != before
    limit = next(line for line in Path(f"/proc/{after[0]}/limits").read_text().splitlines() if "address space" in line)
    assert str(400 * 1024 * 1024) in limit
    assert Path(f"/proc/{after[0]}/oom_score_adj").read_text().strip() == "1000"  # the OOM killer takes it first


def test_typed_errors_come_back_as_they_were(tmp_path: Path, cage: Cage) -> None:
    with pytest.raises(CorruptInputError) as caught:
        read_input(samples.make_truncated_pdf(tmp_path / "cut.pdf"), LIMITS, cage)
    assert "cut.pdf" in caught.value.what


def test_two_readers_at_once_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """A pool of two: while one process is stuck on a busy page, the other reads a good file at once."""
    limits = InputLimits(max_decode_cpu_seconds=3, max_decode_seconds=30)
    busy = hostile.make_many_operations(tmp_path / "busy.pdf")
    good = samples.make_pdf(tmp_path / "good.pdf", pages=1)
    with Cage(2, limits) as cage:
        read_input(good, limits, cage)  # both processes ready
        read_input(good, limits, cage)
        errors: list[BaseException] = []

        def read_busy() -> None:
            try:
                read_input(busy, limits, cage)
            except InputBeyondLimitsError as exc:
                errors.append(exc)

        before = {pid: _cpu_ticks(pid) for pid in cage.pids()}
        thread = threading.Thread(target=read_busy)
        thread.start()
        wait_until(lambda: any(_cpu_ticks(pid) > ticks + 10 for pid, ticks in before.items()), 20, what="busy")
        assert thread.is_alive()
        started = time.monotonic()
        read_input(good, limits, cage)
        quick = time.monotonic() - started
        thread.join(60)
        assert errors, "the busy page was not stopped"
        assert quick < 2.0, f"the good file waited {quick:.1f} s"


def test_closing_ends_every_process(tmp_path: Path) -> None:
    cage = Cage(2, LIMITS)
    read_input(samples.make_pdf(tmp_path / "q.pdf", pages=1), LIMITS, cage)
    pids = cage.pids()
    assert len(pids) == 2
    cage.close()
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process so far, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def test_closing_while_a_file_is_read_is_no_breach(tmp_path: Path) -> None:
    """Stopping the daemon mid-file ends that reading process too, and its worker hears "stopping", not that the
    file broke a limit (which would become an ERROR_ for a file that may be fine)."""
    limits = InputLimits(max_decode_cpu_seconds=30, max_decode_seconds=60)
    busy = hostile.make_many_operations(tmp_path / "busy.pdf")
    cage = Cage(2, limits)
    read_input(samples.make_pdf(tmp_path / "q.pdf", pages=1), limits, cage)
    pids = cage.pids()
    before = {pid: _cpu_ticks(pid) for pid in pids}
    outcome: list[BaseException] = []

    def read_busy() -> None:
        try:
            read_input(busy, limits, cage)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read_busy)
    thread.start()
    wait_until(lambda: any(_cpu_ticks(pid) > ticks + 10 for pid, ticks in before.items()), 20, what="busy")
    cage.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ReaderUnavailableError), outcome
    assert not any(_alive(pid) for pid in pids)


def test_renew_replaces_every_process(tmp_path: Path) -> None:
    """What a reload does: fresh processes under the new limits, the old ones ended."""
    path = samples.make_pdf(tmp_path / "q.pdf", pages=1)
    with Cage(2, LIMITS) as cage:
        read_input(path, LIMITS, cage)
        old = cage.pids()
        bigger = InputLimits(max_decode_memory_bytes=400 * 1024 * 1024)
        cage.renew(bigger)
        new = cage.pids()
        assert len(new) == 2 and not set(new) & set(old)
        assert not any(_alive(pid) for pid in old)
        assert read_input(path, bigger, cage).page_count == 1
        assert sorted(cage.pids()) == sorted(new)  # the renewed ones are used, not replaced again


def test_a_sieved_notebook_is_the_same_in_the_cage_and_what_comes_back_is_checked(tmp_path: Path) -> None:
    """A long notebook read against known prints (page_sieve.py): the reading process carries and skips the same
    pages as a sieve in this process; and a page list that does not fit what was asked is refused as garbled."""
    pytest.importorskip("rmscene")
    from eink_llm.economy import page_inks
    from eink_llm.inkdiff import make_print
    from eink_llm.page_sieve import PrintSieve
    from eink_llm.reader.cage_result import document
    from tests.notebooks import rmdoc

    limits = InputLimits(max_pages=2, max_decode_seconds=60, max_decode_cpu_seconds=30)
    old = ["Lines_v2.rm", None, "Color_and_tool_v3.14.4.rm", "Normal_A_stroke_2_layers_v3.3.2.rm"]
    first = read_input(_write(tmp_path / "a.rmdoc", rmdoc(old)), InputLimits(max_pages=4))
    known = [make_print(image, ink) for image, ink in zip(first.images, page_inks(first.images), strict=True)]
    # Page 2 written on (its blank page moved down), then two pages and a blank one added, and one more: past
    # max_pages (2) changed pages.
    new = [old[0], "test-crdt-ordering.rm", old[2], None, old[3], old[0], None, "Bold_Heading_Bullet_Normal.rm"]
    path = _write(tmp_path / "b.rmdoc", rmdoc(new))
    with Cage(1, limits) as cage:
        caged = read_input(path, limits, cage, sieve=PrintSieve(known, limits.max_pages))
    here = read_input(path, limits, sieve=PrintSieve(known, limits.max_pages))
    assert caged.skipped == here.skipped
    assert [i.tobytes() for i in caged.images] == [i.tobytes() for i in here.images]
    kinds = [
        None if e is None else e.known if e.known is not None else "blank" if e.blank else "print" for e in here.skipped
    ]
    # Pages 1, 3, 4 and 5 are known ones, moved or not (4 is the blank page 2); 2 and 6 are carried (6 is page 1
    # again: its known print is taken by page 1); 7 is blank (no blank known print left): not carried; 8 is past
    # max_pages: only its print.
    assert kinds == [0, None, 2, 1, 3, None, "blank", "print"]
    assert caged.pages_not_carried == 1 and len(caged.images) == 2

    header = {"ok": True, "kind": "notebook", "page_count": 2, "sizes": [], "origin": None, "text_cut": None}
    text = bytearray(b"")
    good = bytearray(known[0])
    for skipped, blobs, count in (
        ([0, 1], [], 1),  # a known print that was not sent
        ([0, "print"], [], 4),  # a print announced, none sent
        ([0, "print"], [bytearray(b"not a png")], 4),
        ([0, "print"], [bytearray(samples.make_png(tmp_path / "grey.png", (40, 40)).read_bytes())], 4),  # not 1-bit
        ([0, None], [], 4),  # a carried page that was not sent
        ([0], [], 4),  # a page list shorter than the notebook
        ([0, "print"], [good, good], 4),  # a print too many
    ):
        with pytest.raises(CorruptInputError, match="returned something unexpected"):
            document("x.rmdoc", {**header, "skipped": skipped}, [text, *blobs], limits, count)
    with pytest.raises(CorruptInputError):  # a page list nobody asked for
        document("x.rmdoc", {**header, "skipped": [None, None]}, [text], limits, None)
    ok = document("x.rmdoc", {**header, "skipped": [0, "print"]}, [text, good], limits, 4)
    assert ok.skipped[1] is not None and ok.skipped[1].print == known[0] and ok.pages_not_carried == 1


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
