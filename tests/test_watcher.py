"""The folder watcher: candidate names, settling, sync-client renames, startup scans, health and fallbacks.

Integration tests run a real watchdog observer (inotify and polling) on pytest's tmp folders and wait for
conditions with a deadline while calling ``tick()``, the way the service's main loop does; nothing asserts after
a fixed sleep. "Is never reported" is checked by writing a sentinel file *afterwards* and waiting for it: the
sentinel cannot settle before the earlier file had at least as long to be (wrongly) reported. The settling rule
itself is tested deterministically with a fake clock and no observer.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from watchdog.events import FileCreatedEvent, FileModifiedEvent, FileMovedEvent
from watchdog.observers.inotify import InotifyObserver

from eink_llm import watch_mounts
from eink_llm import watcher as watcher_module
from eink_llm.watch_mounts import MountTable
from eink_llm.watcher import CANDIDATE_SUFFIXES, SettledFile, Watcher, is_candidate

# watchdog warns when its own recursive registration races a `mkdir -p` below a watched folder; harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")

SETTLE = 0.3
POLL_INTERVAL = 0.2
TIMEOUT = 10.0


# --- helpers ---------------------------------------------------------------------------------------------


class Recorder:
    """An ``on_settled`` callback that remembers what it was given (and may be told to fail)."""

    def __init__(self) -> None:
        self.files: list[SettledFile] = []
        self.fail_next = 0

    def __call__(self, settled: SettledFile) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the queue is unavailable")
        self.files.append(settled)

    def names(self) -> list[str]:
        return [f.path.name for f in self.files]

    def count(self, name: str) -> int:
        return self.names().count(name)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def level(entry: MutableMapping[str, Any]) -> str:
    """An entry's level as the log shows it: ``capture_logs`` gives ``log.exception`` as "exception" in structlog
    24.1 (our lowest allowed) and as "error" in 26.1 (the lock); the daemon's output says "error" with both."""
    return "error" if entry["log_level"] == "exception" else str(entry["log_level"])


def events(logs: list[MutableMapping[str, Any]], at: str) -> list[str]:
    """The events ``structlog.testing.capture_logs`` captured at level ``at``."""
    return [str(entry["event"]) for entry in logs if level(entry) == at]


def mount_table(*mounts: tuple[str, str]) -> Callable[[], MountTable]:
    """A ``mounts`` seam for the watcher: this table instead of the machine's /proc/self/mountinfo."""
    return lambda: list(mounts)


def failing_inotify(code: int, created: list[InotifyObserver] | None = None) -> Callable[[], InotifyObserver]:
    """A ``native_observer`` seam: a real inotify observer whose start fails with ``code`` (as at the limit)."""

    def make() -> InotifyObserver:
        observer = InotifyObserver()

        def start() -> None:
            raise OSError(code, os.strerror(code))

        observer.start = start  # type: ignore[method-assign]
        if created is not None:
            created.append(observer)
        return observer

    return make


def wait_until(watcher: Watcher, predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Call ``tick()`` like the service loop does until ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        watcher.tick()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)


def write(path: Path, data: bytes = b"%PDF-1.4 question\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def wait_for_sentinel(watcher: Watcher, recorder: Recorder, root: Path, name: str = "zz-sentinel.png") -> None:
    write(root / name, b"sentinel")
    wait_until(watcher, lambda: name in recorder.names(), what=f"{name} to be reported")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_watcher(recorder: Recorder) -> Iterator[Callable[..., Watcher]]:
    """Build watchers with fast test timings; every one is stopped at teardown."""
    made: list[Watcher] = []

    def make(roots: list[Path], mode: str = "inotify", **kwargs: Any) -> Watcher:
        kwargs.setdefault("settle_seconds", SETTLE)
        kwargs.setdefault("polling_interval", POLL_INTERVAL)
        kwargs.setdefault("on_settled", recorder)
        polling: Any = {"inotify": False, "polling": True, "auto": "auto"}[mode]
        watcher = Watcher(roots, polling=polling, **kwargs)
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


@pytest.fixture(params=["inotify", "polling"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- is_candidate (pure) ---------------------------------------------------------------------------------

IGNORED = [
    # sync-client and browser temp names
    ".syncthing.q.pdf.tmp",
    ".syncthing.q.pdf.1a2b3c.tmp",  # our own atomic writes
    "~syncthing~q.pdf.tmp",
    "~syncthing~q.pdf",
    "q.pdf.partial",
    "q.pdf.a1b2c3d4.partial",  # rclone
    "q.pdf.part",
    "q.pdf.crdownload",
    "q.pdf.filepart",
    "q.pdf.download",
    "q.pdf.tmp",
    "q.pdf~",
    "~$q.pdf",
    # OS bookkeeping
    ".~lock.q.pdf#",
    "._q.pdf",
    ".DS_Store",
    "desktop.ini",
    "Thumbs.db",
    "THUMBS.DB",
    # hidden files, even with a candidate suffix
    ".q.pdf",
    ".hidden.PNG",
    # conflict copies
    "q.sync-conflict-20240131-120000-ABCDEFG.pdf",
    "q_conflict-20240131-120000.pdf",
    "q (conflicted copy 2024-01-31 120000).pdf",
    "q (Bob's conflicted copy 2024-01-31).jpg",
    # not a page export
    "q.txt",
    "q",
    "q.pdf.json",
    "notes.docx",
    # ignored folders, at any depth below the root
    ".stfolder/q.pdf",
    ".stversions/q.pdf",
    ".stversions/sub/q~20240131-120000.pdf",
    "@eaDir/q.pdf/SYNOFILE_THUMB_M.jpg",
    "sub/@eaDir/q.jpg",
    ".Trashes/501/q.pdf",
    "__MACOSX/q.pdf",
    ".Spotlight-V100/q.png",
    ".localized/q.pdf",
    ".Trash-1000/files/q.pdf",
    ".git/q.png",
    "sub/.hidden/q.pdf",
    "$RECYCLE.BIN/q.pdf",
    "#recycle/q.pdf",
    "lost+found/q.pdf",
]

ACCEPTED = [
    "q.pdf",
    "Q.PDF",
    "page.Pdf",
    "scan.png",
    "photo.jpg",
    "photo.JPEG",
    "shot.webp",
    "fax.tif",
    "fax.TIFF",
    "sub/q.pdf",
    "sub/deeper/still/q.png",
    "RESPONSE_conv_20240131_120000_0123abcd_ex001_q.pdf",  # our answers are candidates; the service skips them
    "my_conflict-notes.pdf",  # not a conflict copy pattern
    "résumé question.pdf",
    "v1.2 notes.pdf",
    "eaDir/q.pdf",
    "notes~1/q.pdf",
]


@pytest.mark.parametrize("relative", IGNORED)
def test_is_candidate_rejects_temp_system_and_ignored_names(relative: str, tmp_path: Path) -> None:
    assert not is_candidate(tmp_path / relative, tmp_path)


@pytest.mark.parametrize("relative", ACCEPTED)
def test_is_candidate_accepts_exports(relative: str, tmp_path: Path) -> None:
    assert is_candidate(tmp_path / relative, tmp_path)


def test_is_candidate_edges(tmp_path: Path) -> None:
    assert {s.lower() for s in CANDIDATE_SUFFIXES} == CANDIDATE_SUFFIXES
    assert not is_candidate(tmp_path, tmp_path)  # the root itself
    assert not is_candidate(tmp_path.parent / "elsewhere.pdf", tmp_path)  # outside the root
    assert not is_candidate(tmp_path / "sub" / ".." / ".." / "x.pdf", tmp_path)
    # only folders between the root and the file count: a root inside a hidden folder is fine
    hidden_root = tmp_path / ".config" / "inbox"
    assert is_candidate(hidden_root / "q.pdf", hidden_root)


# --- mount table parsing (pure) --------------------------------------------------------------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:36 / /mnt/nas2 rw,relatime shared:21 - ext4 /dev/sdb1 rw
42 22 0:37 / /home/me/My\\040Share rw - cifs //srv/share rw
43 22 0:38 / /mnt/stack rw - ext4 /dev/sdc1 rw
44 43 0:39 / /mnt/stack rw - fuse.sshfs me@host:/ rw
45 22 0:40 / /media/tablet rw,nosuid master:7 opt:x - fuse.rclone remote: rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/me/inbox", "ext4"),
        ("/mnt/nas", "nfs4"),
        ("/mnt/nas/tablet/inbox", "nfs4"),
        ("/mnt/nas2/inbox", "ext4"),  # a prefix of the name is not a parent folder
        ("/home/me/My Share/inbox", "cifs"),  # octal escapes in mount points
        ("/mnt/stack/inbox", "fuse.sshfs"),  # the last mount on the same point is the visible one
        ("/media/tablet/x", "fuse.rclone"),  # optional fields before the separator
    ],
)
def test_filesystem_type_from_mountinfo(path: str, expected: str) -> None:
    mounts = watch_mounts.parse_mountinfo(MOUNTINFO)
    assert watch_mounts.filesystem_type(path, mounts) == expected


def test_filesystem_type_from_proc_mounts() -> None:
    mounts = watch_mounts.parse_proc_mounts("/dev/sda1 / ext4 rw 0 0\n//srv/s /mnt/s\\040x cifs rw 0 0\n")
    assert watch_mounts.filesystem_type("/mnt/s x/in", mounts) == "cifs"
    assert watch_mounts.filesystem_type("/mnt/s", mounts) == "ext4"
    assert watch_mounts.is_network_fs("nfs") and watch_mounts.is_network_fs("fuse.sshfs")
    assert not watch_mounts.is_network_fs("ext4") and not watch_mounts.is_network_fs("tmpfs")


# --- settling rules with a fake clock (no observer) ------------------------------------------------------


def test_settling_needs_unchanged_stats_spanning_settle_seconds(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=2.0, clock=clock)
    q = write(root / "q.pdf", b"1234")
    watcher.scan()
    assert watcher.tick() == []  # first stat
    clock.advance(1.9)
    assert watcher.tick() == []
    with q.open("ab") as handle:  # still being written: the timer starts again
        handle.write(b"5678")
    clock.advance(0.5)
    assert watcher.tick() == []
    clock.advance(1.9)
    assert watcher.tick() == []
    clock.advance(0.1)
    [settled] = watcher.tick()
    st = q.stat()
    assert settled == SettledFile(q, root, 8, st.st_mtime_ns)
    assert recorder.files == [settled]
    assert watcher.tick() == []


def test_an_event_restarts_the_quiet_period(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=2.0, clock=clock)
    q = write(root / "q.pdf")
    handler = watcher_module._Handler(watcher)
    handler.dispatch(FileCreatedEvent(str(q)))
    watcher.tick()
    clock.advance(1.5)
    handler.dispatch(FileModifiedEvent(str(q)))  # e.g. a write that kept size and mtime (coarse timestamps)
    clock.advance(1.0)
    assert watcher.tick() == []
    clock.advance(1.0)
    assert [s.path for s in watcher.tick()] == [q]


def test_the_settle_period_starts_at_the_last_event_not_at_the_next_tick(root: Path, recorder: Recorder) -> None:
    """The file settles settle_seconds after its last write event, however late the first tick stats it
    (issue 12: the watcher added ~200 ms beyond settle_seconds)."""
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=2.0, clock=clock)
    q = write(root / "q.pdf")
    watcher_module._Handler(watcher).dispatch(FileCreatedEvent(str(q)))
    clock.advance(0.2)  # the loop's first tick comes a little later
    assert watcher.tick() == []
    clock.advance(1.8)
    assert [s.path for s in watcher.tick()] == [q]


def test_next_due_says_when_to_tick(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=2.0, clock=clock)
    assert watcher.next_due() is None
    q = write(root / "q.pdf")
    start = clock()
    handler = watcher_module._Handler(watcher)
    handler.dispatch(FileCreatedEvent(str(q)))
    assert watcher.next_due() == start + 2.0
    clock.advance(0.2)
    watcher.tick()
    assert watcher.next_due() == start + 2.0
    clock.advance(0.5)
    handler.dispatch(FileModifiedEvent(str(q)))  # another write: later
    assert watcher.next_due() == start + 2.7
    clock.advance(2.0)
    assert [s.path for s in watcher.tick()] == [q]
    assert watcher.next_due() is None


def test_next_due_never_asks_for_a_busy_loop_on_a_file_that_cannot_be_statted(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=1.0, clock=clock)
    watcher_module._Handler(watcher).dispatch(FileCreatedEvent(str(root / ("x" * 300 + ".pdf"))))  # ENAMETOOLONG
    clock.advance(1.0)
    assert watcher.tick() == []
    due = watcher.next_due()
    assert due is None or due > clock()


def test_unchanged_file_is_not_reported_twice_and_changed_one_is(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=1.0, clock=clock)
    q = write(root / "q.pdf")
    handler = watcher_module._Handler(watcher)
    watcher.scan()
    watcher.tick()
    clock.advance(1.0)
    assert len(watcher.tick()) == 1
    # duplicated events and rescans of the unchanged file: nothing new
    for _ in range(3):
        handler.dispatch(FileModifiedEvent(str(q)))
        watcher.scan()
        watcher.tick()
        clock.advance(1.0)
        assert watcher.tick() == []
    assert not watcher._pending
    # a real change is reported again
    q.write_bytes(b"%PDF-1.4 a longer second version\n")
    handler.dispatch(FileModifiedEvent(str(q)))
    watcher.tick()
    clock.advance(1.0)
    assert [s.size for s in watcher.tick()] == [q.stat().st_size]
    assert recorder.count("q.pdf") == 2


def test_zero_settle_seconds_reports_on_first_tick(root: Path, recorder: Recorder) -> None:
    watcher = Watcher([root], on_settled=recorder, settle_seconds=0, clock=FakeClock())
    write(root / "q.pdf")
    watcher.scan()
    assert [s.path.name for s in watcher.tick()] == ["q.pdf"]


def test_callback_exception_propagates_and_nothing_is_lost(root: Path, recorder: Recorder) -> None:
    """on_settled runs in the caller's thread: its exception leaves tick(). The failed file is picked up again by
    the next scan; files that settled in the same tick stay pending and come with the next tick."""
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=1.0, clock=clock)
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        write(root / name)
    watcher.scan()
    watcher.tick()
    clock.advance(1.0)
    recorder.fail_next = 1
    with pytest.raises(RuntimeError, match="queue is unavailable"):
        watcher.tick()
    assert len(watcher.tick()) == 2  # the two that had not been handed over yet
    assert len(recorder.files) == 2
    watcher.scan()  # the periodic rescan retries the one that failed
    watcher.tick()
    clock.advance(1.0)
    assert len(watcher.tick()) == 1
    assert sorted(recorder.names()) == ["a.pdf", "b.pdf", "c.pdf"]


def test_memory_is_bounded_by_present_files(root: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = Watcher([root], on_settled=recorder, settle_seconds=1.0, clock=clock)
    files = [write(root / f"q{i}.pdf") for i in range(5)]
    watcher.scan()
    watcher.tick()
    clock.advance(1.0)
    assert len(watcher.tick()) == 5
    assert len(watcher._reported) == 5
    for path in files[:3]:
        path.unlink()
    watcher.scan()  # deleted without an event reaching us (overflow, watcher down): the scan forgets them
    assert set(watcher._reported) == set(files[3:])
    # noted, then vanished before settling: dropped
    gone = write(root / "gone.pdf")
    watcher.scan()
    gone.unlink()
    watcher.tick()
    assert gone not in watcher._pending


def test_constructor_validates_arguments(root: Path, recorder: Recorder) -> None:
    with pytest.raises(ValueError):
        Watcher([], on_settled=recorder)
    with pytest.raises(ValueError):
        Watcher([root], on_settled=recorder, polling="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Watcher([root], on_settled=recorder, settle_seconds=-1)
    with pytest.raises(ValueError):
        Watcher([root], on_settled=recorder, polling_interval=0)


# --- with a real observer ----------------------------------------------------------------------------------


def test_file_written_in_place_is_reported_once(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str
) -> None:
    watcher = make_watcher([root], mode)
    watcher.start()
    assert watcher.using_polling is (mode == "polling")
    q = write(root / "q.pdf")
    wait_until(watcher, lambda: "q.pdf" in recorder.names())
    wait_for_sentinel(watcher, recorder, root)
    assert recorder.count("q.pdf") == 1
    [settled] = [f for f in recorder.files if f.path.name == "q.pdf"]
    assert settled == SettledFile(q, root, q.stat().st_size, q.stat().st_mtime_ns)
    assert settled.path.is_absolute()


def test_growing_file_is_reported_only_after_it_stops(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str
) -> None:
    # A longer settle period than elsewhere, so a scheduler stall between two appends cannot settle the file.
    watcher = make_watcher([root], mode, settle_seconds=0.6)
    watcher.start()
    q = root / "big.pdf"
    with q.open("wb") as handle:
        end = time.monotonic() + 1.2  # two settle periods
        while time.monotonic() < end:
            handle.write(b"x" * 1000)
            handle.flush()
            next_write = time.monotonic() + 0.1
            while time.monotonic() < next_write:  # keep ticking while the file grows
                watcher.tick()
                time.sleep(0.01)
            assert recorder.files == [], "reported while still growing"
    size = q.stat().st_size
    wait_until(watcher, lambda: recorder.files)
    assert [(f.path.name, f.size) for f in recorder.files] == [("big.pdf", size)]


@pytest.mark.parametrize("temp_name", [".syncthing.q.pdf.tmp", "q.pdf.partial", "q.pdf.1f2e3d4c.partial"])
def test_temp_name_renamed_into_place_counts_as_new_file(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str, temp_name: str
) -> None:
    watcher = make_watcher([root], mode)
    watcher.start()
    temp = write(root / temp_name, b"%PDF-1.4 synced\n")
    for _ in range(5):  # the sync client writes the temp file while we are watching
        watcher.tick()
        time.sleep(0.02)
    os.replace(temp, root / "q.pdf")
    wait_until(watcher, lambda: "q.pdf" in recorder.names())
    wait_for_sentinel(watcher, recorder, root)
    assert sorted(recorder.names()) == ["q.pdf", "zz-sentinel.png"]
    assert recorder.files[0].path == root / "q.pdf"


def test_new_version_renamed_over_a_reported_file_is_reported_again(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    watcher = make_watcher([root])
    watcher.start()
    write(root / "q.pdf", b"first")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 1)
    temp = write(root / ".syncthing.q.pdf.tmp", b"second, longer version")
    os.replace(temp, root / "q.pdf")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 2)
    assert [f.size for f in recorder.files] == [5, len(b"second, longer version")]


def test_unchanged_file_touched_by_events_and_scans_is_not_reported_again(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    watcher = make_watcher([root])
    watcher.start()
    q = write(root / "q.pdf")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 1)
    with q.open("ab"):  # open for writing and close without writing: a "closed" event, nothing changed
        pass
    watcher.scan()
    wait_for_sentinel(watcher, recorder, root)
    assert recorder.count("q.pdf") == 1
    with q.open("ab") as handle:
        handle.write(b"more")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 2)


def test_a_same_size_edit_with_its_old_mtime_set_back_is_reported_again(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str
) -> None:
    """A sync client may write new content of the same size in place and then set the old mtime back (keeping
    the device's time): size and mtime alone would call it unchanged. The ctime moves on every write and utime."""
    watcher = make_watcher([root], mode)
    watcher.start()
    q = write(root / "q.pdf", b"%PDF-1.4 first")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 1)
    before = q.stat()
    with q.open("r+b") as handle:  # in place: same inode, same size
        handle.write(b"%PDF-1.4 again")
    os.utime(q, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = q.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    watcher.scan()  # a polling observer compares size and mtime only: the watcher's own rescan must see it
    wait_until(watcher, lambda: recorder.count("q.pdf") == 2, what="the same-size edit to be reported")


def test_files_present_before_start_are_reported(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    for relative in ("a.pdf", "sub/b.PNG", "sub/deeper/c.jpeg"):
        write(root / relative)
    for relative in (".stversions/old.pdf", "@eaDir/a.pdf/thumb.jpg", ".syncthing.x.pdf.tmp", "x.pdf.partial"):
        write(root / relative)
    watcher = make_watcher([root])
    watcher.start()
    wait_until(watcher, lambda: len(recorder.files) >= 3)
    wait_for_sentinel(watcher, recorder, root)
    assert sorted(f.path.relative_to(root).as_posix() for f in recorder.files) == [
        "a.pdf",
        "sub/b.PNG",
        "sub/deeper/c.jpeg",
        "zz-sentinel.png",
    ]


def test_files_in_ignored_folders_and_temp_names_are_never_reported(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str
) -> None:
    watcher = make_watcher([root], mode)
    watcher.start()
    for relative in (".stversions/q.pdf", "sub/@eaDir/q.jpg", ".hidden.pdf", "q.pdf.crdownload", "._q.pdf"):
        write(root / relative)
    (root / "__MACOSX").mkdir()
    write(root / "__MACOSX" / "q.pdf")
    wait_for_sentinel(watcher, recorder, root)
    assert recorder.names() == ["zz-sentinel.png"]


def test_symlinks_are_not_reported(
    root: Path, tmp_path: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    outside = tmp_path / "outside"
    secret = write(outside / "secret.pdf")
    (root / "before.pdf").symlink_to(secret)
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)
    watcher = make_watcher([root])
    watcher.start()
    (root / "after.pdf").symlink_to(secret)
    write(outside / "new.pdf")  # appears inside the symlinked folder
    wait_for_sentinel(watcher, recorder, root)
    assert recorder.names() == ["zz-sentinel.png"]


def test_directory_moved_into_the_root_reports_its_files(
    root: Path, tmp_path: Path, recorder: Recorder, make_watcher: Callable[..., Watcher], mode: str
) -> None:
    staged = tmp_path / "staged"
    write(staged / "a.pdf")
    write(staged / "inner" / "b.png")
    write(staged / ".syncthing.c.pdf.tmp")
    watcher = make_watcher([root], mode)
    watcher.start()
    os.rename(staged, root / "batch")
    wait_until(watcher, lambda: len(recorder.files) >= 2)
    wait_for_sentinel(watcher, recorder, root)
    assert sorted(f.path.relative_to(root).as_posix() for f in recorder.files) == [
        "batch/a.pdf",
        "batch/inner/b.png",
        "zz-sentinel.png",
    ]


def test_deleted_file_is_forgotten(root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]) -> None:
    watcher = make_watcher([root])
    watcher.start()
    q = write(root / "q.pdf")
    wait_until(watcher, lambda: recorder.count("q.pdf") == 1)
    assert q in watcher._reported
    q.unlink()
    wait_until(watcher, lambda: q not in watcher._reported, what="the deleted file to be forgotten")
    write(q)  # the same content exported again is a new question
    wait_until(watcher, lambda: recorder.count("q.pdf") == 2)


def test_event_handler_survives_bad_events(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    class ExplodingEvent:
        event_type = "created"
        src_path = "/x.pdf"

        @property
        def is_directory(self) -> bool:
            raise RuntimeError("boom")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    watcher = make_watcher([root])
    watcher.start()

    class Featureless:
        """No event attributes at all, but (unlike a bare ``object()``) it can take the ``watch_path`` that
        watchdog 7's dispatch thread sets on every event before it reaches any handler."""

    bad_events: list[Any] = [
        ExplodingEvent(),
        FileCreatedEvent(12345),  # type: ignore[arg-type]
        FileMovedEvent(str(root / "a.pdf"), b"\xff\xfe"),
        Featureless(),
    ]
    handler = watcher_module._Handler(watcher)
    with structlog.testing.capture_logs() as logs:
        for event in [*bad_events, object()]:
            handler.dispatch(event)  # directly: must not raise, whatever it is handed
        observer = watcher._observer
        assert observer is not None
        emitter = next(iter(observer.emitters))
        for event in bad_events:
            emitter.queue_event(event)  # through watchdog's own dispatch thread
        wait_for_sentinel(watcher, recorder, root)
    assert watcher.is_healthy()
    ignored = [e for e in logs if e["event"] == "ignoring a filesystem event that could not be handled"]
    assert len(ignored) >= 2 * 3 and all(level(e) == "error" and e["exc_info"] for e in ignored)
    write(root / "later.pdf")
    wait_until(watcher, lambda: "later.pdf" in recorder.names())


def test_is_healthy_turns_false_when_the_root_is_deleted_inotify(
    root: Path, make_watcher: Callable[..., Watcher]
) -> None:
    watcher = make_watcher([root])
    watcher.start()
    assert watcher.is_healthy()
    shutil.rmtree(root)
    root.mkdir()  # even a new folder of the same name is not watched any more
    wait_until(watcher, lambda: not watcher.is_healthy(), what="the dead emitter to be noticed")
    assert root.is_dir()


def test_is_healthy_turns_false_when_the_root_is_deleted_polling(
    root: Path, make_watcher: Callable[..., Watcher]
) -> None:
    watcher = make_watcher([root], "polling")
    watcher.start()
    assert watcher.is_healthy()
    shutil.rmtree(root)
    assert not watcher.is_healthy()
    observer = watcher._observer
    assert observer is not None
    wait_until(watcher, lambda: not any(e.is_alive() for e in observer.emitters), what="the polling emitter to stop")


def test_stop_is_idempotent_and_the_watcher_can_start_again(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    watcher = make_watcher([root])
    watcher.stop()  # before start
    assert not watcher.is_healthy()
    watcher.start()
    with pytest.raises(RuntimeError):
        watcher.start()
    threads = watcher._observer and [watcher._observer, *watcher._observer.emitters]
    watcher.stop()
    watcher.stop()
    assert not watcher.is_healthy()
    assert threads and not any(thread.is_alive() for thread in threads)
    write(root / "while-down.pdf")
    watcher.start()  # e.g. the service rebuilding a dead observer
    wait_until(watcher, lambda: "while-down.pdf" in recorder.names())
    watcher.stop()


def test_missing_root_raises_file_not_found(tmp_path: Path, make_watcher: Callable[..., Watcher]) -> None:
    missing = tmp_path / "not-mounted"
    watcher = make_watcher([missing])
    with pytest.raises(FileNotFoundError, match="not-mounted"):
        watcher.start()
    assert not missing.exists()
    assert not watcher.is_healthy()
    a_file = write(tmp_path / "file.pdf")
    with pytest.raises(NotADirectoryError, match=r"file\.pdf"):
        make_watcher([a_file]).start()


def test_symlinked_root_is_watched_and_reported_under_its_own_name(
    tmp_path: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    real = tmp_path / "real-inbox"
    real.mkdir()
    link = tmp_path / "inbox-link"
    link.symlink_to(real, target_is_directory=True)
    watcher = make_watcher([link])
    watcher.start()
    write(real / "q.pdf")
    wait_until(watcher, lambda: recorder.files)
    assert recorder.files[0].path == link / "q.pdf"
    assert recorder.files[0].root == link


def test_several_and_nested_roots_report_the_innermost_root(
    tmp_path: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    outer, inner, other = tmp_path / "outer", tmp_path / "outer" / "alice", tmp_path / "bob"
    for folder in (inner, other):
        folder.mkdir(parents=True)
    write(inner / "before.pdf")
    watcher = make_watcher([outer, inner, other, other])
    watcher.start()
    for folder in (outer, inner, other):
        write(folder / "q.pdf")
    wait_until(watcher, lambda: len(recorder.files) >= 4)
    wait_for_sentinel(watcher, recorder, other)
    by_path = {f.path: f.root for f in recorder.files}
    assert by_path == {
        inner / "before.pdf": inner,
        outer / "q.pdf": outer,
        inner / "q.pdf": inner,
        other / "q.pdf": other,
        other / "zz-sentinel.png": other,
    }
    assert len(recorder.files) == 5


# --- polling="auto" ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_auto_falls_back_to_polling_at_the_inotify_limit(
    root: Path,
    recorder: Recorder,
    make_watcher: Callable[..., Watcher],
    code: int,
) -> None:
    created: list[InotifyObserver] = []
    watcher = make_watcher(
        [root], "auto", mounts=mount_table(("/", "ext4")), native_observer=failing_inotify(code, created)
    )
    with structlog.testing.capture_logs() as logs:
        watcher.start()
    assert watcher.using_polling
    assert watcher.is_healthy()
    [warning] = events(logs, "warning")
    assert "max_user_watches" in warning and "watch.polling: true" in warning
    reader = getattr(created[0], "_inotify_fd", None)  # watchdog >= 6: one reader thread per inotify observer
    assert reader is None or not reader.is_alive(), "the failed inotify observer left its reader thread running"
    write(root / "q.pdf")
    wait_until(watcher, lambda: recorder.names() == ["q.pdf"])


def test_inotify_errors_propagate_when_polling_is_off_or_unrelated(
    root: Path, make_watcher: Callable[..., Watcher]
) -> None:
    local = mount_table(("/", "ext4"))
    forced = make_watcher([root], "inotify", mounts=local, native_observer=failing_inotify(errno.ENOSPC))
    with pytest.raises(OSError) as caught:
        forced.start()
    assert caught.value.errno == errno.ENOSPC
    assert not forced.is_healthy()

    auto = make_watcher([root], "auto", mounts=local, native_observer=failing_inotify(errno.EACCES))
    with pytest.raises(PermissionError):
        auto.start()


def test_auto_polls_a_root_on_a_network_filesystem(
    root: Path, recorder: Recorder, make_watcher: Callable[..., Watcher]
) -> None:
    real = os.path.realpath(root)
    watcher = make_watcher([root], "auto", mounts=mount_table(("/", "ext4"), (real, "nfs4")))
    with structlog.testing.capture_logs() as logs:
        watcher.start()
    assert watcher.using_polling
    [info] = events(logs, "info")
    assert "network filesystem" in info
    write(root / "q.pdf")
    wait_until(watcher, lambda: recorder.names() == ["q.pdf"])


def test_auto_uses_inotify_on_a_local_filesystem(root: Path, make_watcher: Callable[..., Watcher]) -> None:
    watcher = make_watcher([root], "auto", mounts=mount_table(("/", "ext4")))
    watcher.start()
    assert not watcher.using_polling
    assert watcher.is_healthy()


def test_no_threads_of_its_own(root: Path, make_watcher: Callable[..., Watcher]) -> None:
    before = set(threading.enumerate())
    watcher = make_watcher([root], "polling")
    watcher.start()
    observer = watcher._observer
    assert observer is not None
    new = set(threading.enumerate()) - before
    assert new <= {observer, *observer.emitters}
    watcher.stop()
