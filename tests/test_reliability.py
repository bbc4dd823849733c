"""Faults that used to stop answers for good (issue 12, defects 6-9): a file that kills the daemon every time,
a database that is full or locked for long, a 10 GB sparse file, an answer whose folder cannot be written, a
damaged database under ``status``. Each with the real daemon process, a real SQLite file and a real fault (no
patching): SIGKILL from the answering program, RLIMIT_FSIZE set on the running daemon, a second connection
holding ``BEGIN EXCLUSIVE``, a folder replaced by a file, a read-only bind mount."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import samples
from tests.fakes import FakeLLMServer
from tests.harness import DaemonProcess, clean_env, db_rows, outputs, pdf_text, wait_until, write_config
from tests.test_resilience import NotifySocket


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def make_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox


def openai_config(tmp_path: Path, inbox: Path, server: FakeLLMServer, **sections: dict[str, object]) -> Path:
    llm = {"backend": "openai", "base_url": server.base_url, "model": "m1", "timeout_seconds": 10}
    sections["llm"] = {**llm, **sections.get("llm", {})}
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "db.sqlite3", **sections)


def run_cli(config: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eink_llm", *args, "-c", str(config)],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


class PipedDaemon(DaemonProcess):
    """The daemon with its log on a pipe, copied into the log file by this process: a file-size limit set on
    the daemon must hit its database and its outputs, not its log."""

    def start(self) -> PipedDaemon:
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eink_llm", "run", "-c", str(self.config)],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.log_file.write(line)
                self.log_file.flush()
            except ValueError:  # closed by stop()
                return


# --- crash loop (build: "Crash-loop proof") ---------------------------------------------------------------

KILLER = """\
import json, os, signal, sys
request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
if "KILLS" in request.get("source_name", ""):
    os.kill(os.getppid(), signal.SIGKILL)  # the daemon dies mid-job, as under the OOM killer
    sys.exit(1)
print("An answer.")
"""


def test_a_file_that_kills_the_daemon_ends_as_an_error_pdf_not_a_restart_loop(tmp_path: Path) -> None:
    """The answering program SIGKILLs the daemon whenever it sees the marker file. After retry.max_attempts
    deaths (the test restarts the daemon like systemd would) the file gets an ERROR_ that says it could not
    be processed, and the next file is answered. Before: every restart took the file again and died again."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    inbox = make_inbox(tmp_path)
    max_attempts = 2
    config = write_config(
        tmp_path / "config.yaml",
        inbox,
        tmp_path / "db.sqlite3",
        llm={"backend": "command", "options": {"command": [sys.executable, "-I", str(script)]}},
        retry={"max_attempts": max_attempts},
    )
    samples.make_png(inbox / "KILLS-me.png", size=(300, 400))
    deaths = 0
    for _restart in range(max_attempts + 2):
        daemon = DaemonProcess(config, tmp_path).start()
        process = daemon.process
        assert process is not None
        wait_until(
            lambda p=process: p.poll() is not None or outputs(inbox, "ERROR_"),  # type: ignore[misc]
            timeout=60,
            what="the daemon to die or to give up on the file",
        )
        if process.poll() is None:
            break
        assert process.returncode == -signal.SIGKILL
        daemon.log_file.close()
        deaths += 1
    else:
        pytest.fail(f"the daemon died {deaths} times and never gave up on the file")
    try:  # the daemon that gave up is still running: the same process answers the next file
        assert deaths == max_attempts
        [error] = outputs(inbox, "ERROR_")
        assert error.name.endswith("_KILLS-me.pdf")
        text = " ".join(pdf_text(error).split())
        assert "could not be processed" in text
        assert f"stopped or failed while working on it {max_attempts} times" in text
        assert "Export the page again" in text
        samples.make_png(inbox / "next.png", size=(300, 400))
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the next file answered")
        assert process.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.__exit__(None, None, None)
    assert [r["state"] for r in db_rows(tmp_path / "db.sqlite3", "SELECT state FROM jobs ORDER BY job_id")] == [
        "failed",
        "done",
    ]


# --- defect 6: a full disk at COMMIT must not kill a worker ------------------------------------------------


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_a_full_disk_at_commit_does_not_stop_the_workers(tmp_path: Path, server: FakeLLMServer) -> None:
    """While the model answers, the daemon's file-size limit drops to one byte (RLIMIT_FSIZE, set from here
    with prlimit: every write past the first byte of any file now fails, as on a full disk), so recording the
    answer fails at COMMIT, and the next file cannot even be queued. When the limit is lifted, both files are
    answered by the same process. Before: the worker was left dead or stuck and nothing more was answered."""
    inbox = make_inbox(tmp_path)
    config = openai_config(tmp_path, inbox, server, service={"workers": 1})
    limited = threading.Event()
    with PipedDaemon(config, tmp_path) as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)

        def answer(_body: object) -> str:
            if not limited.is_set():
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
                limited.set()
            return "An answer."

        server.answer_fn = answer
        wait_until(lambda: "watching" in daemon.log(), timeout=20, what="daemon up")
        samples.make_png(inbox / "first.png", size=(300, 400))
        wait_until(limited.is_set, timeout=30, what="the first request")
        samples.make_png(inbox / "second.png", size=(300, 400))
        wait_until(
            lambda: daemon.log().lower().count("disk i/o error") >= 2,  # SQLite's word for EFBIG
            timeout=30,
            what="the database errors to be noticed",
        )
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=60, what="both files answered")
        assert daemon.process.poll() is None, "the same process answered after the fault"
        assert daemon.stop() == 0
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT input_file, status FROM exchanges ORDER BY input_file")
    assert [(r["input_file"], r["status"]) for r in rows] == [("first.png", "ok"), ("second.png", "ok")]


EXITING_PLUGIN = """\
from pathlib import Path

from eink_llm.backends.echo import EchoBackend

MARK = Path(__file__).with_name("exited-once")


class Backend(EchoBackend):
    def complete(self, request):
        if not MARK.exists():
            MARK.write_text("x")
            raise SystemExit(3)  # a plugin calling sys.exit() inside the worker thread ends that thread
        return super().complete(request)


def create(settings):
    return Backend(settings)
"""


def test_a_worker_thread_that_dies_is_replaced_and_its_job_answered(tmp_path: Path) -> None:
    """A plugin backend raises SystemExit in the only worker thread. The job goes back to the queue, the main
    loop starts a new worker, and both that file and the next are answered by the same process. Before: the
    thread ended silently, the job stayed running, and nothing more was answered until a restart."""
    (tmp_path / "exiting_backend.py").write_text(EXITING_PLUGIN)
    inbox = make_inbox(tmp_path)
    config = write_config(
        tmp_path / "config.yaml",
        inbox,
        tmp_path / "db.sqlite3",
        llm={"backend": "exiting_backend:create"},
        service={"workers": 1},
    )
    python_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    with DaemonProcess(config, tmp_path, env={"PYTHONPATH": python_path}) as daemon:
        samples.make_png(inbox / "first.png", size=(300, 400))
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the first file answered")
        samples.make_png(inbox / "second.png", size=(300, 400))
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=30, what="the next file answered")
        assert (tmp_path / "exited-once").exists()
        assert "a daemon thread died; starting a new one" in daemon.log()
        assert daemon.stop() == 0


# --- defect 7: a long database lock, a 10 GB sparse file ---------------------------------------------------


def test_a_database_locked_for_long_while_a_file_settles_does_not_stop_the_daemon(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    """A second connection holds BEGIN EXCLUSIVE for three times the daemon's busy timeout while a file
    settles. The daemon keeps pinging the watchdog, stays up, and answers the file once the lock is gone.
    Before: the watcher loop blocked on the lock, then the daemon exited 74. The busy timeout is set to 4 s
    (default 30 s): still longer than the largest ping gap allowed, so a loop blocked on the lock fails the test."""
    inbox = make_inbox(tmp_path)
    busy_timeout = 4.0
    config = openai_config(tmp_path, inbox, server, storage={"busy_timeout_seconds": busy_timeout})
    notify = NotifySocket()
    try:
        daemon = DaemonProcess(config, tmp_path, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"})
        with daemon:
            wait_until(lambda: any(m.startswith("READY=1") for m in notify.collect()), timeout=20, what="READY=1")
            locker = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                samples.make_png(inbox / "q.png", size=(300, 400))
                locked_at = time.monotonic()
                pings: list[float] = []
                while time.monotonic() - locked_at < 3 * busy_timeout:  # past the busy timeout, several times
                    assert daemon.process is not None and daemon.process.poll() is None, daemon.log()[-2000:]
                    before = len(notify.messages)
                    notify.collect()
                    pings += [time.monotonic()] * sum(m.startswith("WATCHDOG=1") for m in notify.messages[before:])
                    time.sleep(0.2)  # sampling the pings, not waiting for a condition
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            gaps = [b - a for a, b in zip([locked_at, *pings], [*pings, time.monotonic()], strict=True)]
            assert len(pings) >= 7 and max(gaps) < 3.0, f"watchdog pings stalled: {len(pings)}, {max(gaps):.1f} s"
            wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=60, what="the file answered after the lock")
            assert "cannot queue a file yet" in daemon.log()
            assert daemon.stop() == 0
    finally:
        notify.close()


def _bytes_read(pid: int) -> int:
    """Bytes a process has read through read() and friends (``rchar`` in /proc/PID/io: a sparse file too)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/PID/io")
def test_a_10_gb_sparse_file_is_never_hashed_and_gets_an_error(tmp_path: Path, server: FakeLLMServer) -> None:
    """Over the size limit by its stat: the daemon reads (far) less than 100 MB in all while answering it with
    an ERROR_, the watcher loop keeps pinging the watchdog meanwhile, and the next file is answered. Before: all
    10 GB were hashed on the watcher loop (37 s without a ping, past WatchdogSec)."""
    inbox = make_inbox(tmp_path)
    config = openai_config(tmp_path, inbox, server)
    notify = NotifySocket()
    try:
        daemon = DaemonProcess(config, tmp_path, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"})
        with daemon:
            assert daemon.process is not None
            wait_until(lambda: any(m.startswith("READY=1") for m in notify.collect()), timeout=20, what="READY=1")
            read_before = _bytes_read(daemon.process.pid)
            big = inbox / "huge.pdf"
            with big.open("wb") as handle:
                handle.truncate(10 * 1024**3)
            pings = [time.monotonic()]

            def error_pdf() -> list[Path]:
                before = len(notify.messages)
                notify.collect()
                pings.extend(time.monotonic() for m in notify.messages[before:] if m.startswith("WATCHDOG=1"))
                return outputs(inbox, "ERROR_")

            [error] = wait_until(error_pdf, timeout=90, what="an ERROR_ for the huge file")
            assert _bytes_read(daemon.process.pid) - read_before < 100 * 1024**2, "the huge file was read"
            gaps = [b - a for a, b in zip(pings, [*pings[1:], time.monotonic()], strict=True)]
            assert max(gaps) < 3.0, f"the watchdog went {max(gaps):.1f} s without a ping"
            assert "is too large" in " ".join(pdf_text(error).split())
            samples.make_png(inbox / "next.png", size=(300, 400))
            wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the next file answered")
            assert daemon.stop() == 0
    finally:
        notify.close()
    assert len(server.requests) == 1, "only the next file reached the model"


def test_a_files_queue_identity_never_reads_more_than_the_limit_nor_blocks_on_a_fifo(tmp_path: Path) -> None:
    from eink_llm import intake  # here: the rest of this module also runs against older versions

    small = tmp_path / "q.pdf"
    small.write_bytes(b"abc")
    assert intake.content_id(small, 3, 1, 100) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    sparse = tmp_path / "huge.pdf"
    with sparse.open("wb") as handle:
        handle.truncate(10 * 1024**3)
    assert intake.content_id(sparse, 10 * 1024**3, 7, 100) == f"{intake.OVERSIZED}{10 * 1024**3}:7"
    assert intake.content_id(sparse, 50, 7, 100).startswith(intake.OVERSIZED)  # grew past the limit since stat
    fifo = tmp_path / "swapped.pdf"
    os.mkfifo(fifo)  # swapped in after the file settled: must not block the intake thread
    with pytest.raises(OSError, match="not a regular file"):
        intake.content_id(fifo, 0, 0, 100)


# --- defect 8: an answer whose folder cannot be written is kept and written later --------------------------


@pytest.mark.parametrize("kind", ["RESPONSE_", "ERROR_"])
def test_an_output_that_cannot_be_written_is_kept_and_written_when_the_folder_allows(
    tmp_path: Path, server: FakeLLMServer, kind: str
) -> None:
    """While the model answers, the question's folder is moved away and a plain file takes its name, so
    writing the answer fails (ENOTDIR: works as root, unlike chmod). The answer is kept in the database and
    ``status`` says it waits; when the folder is back it is written, and the model was asked once. The ERROR_
    case: the model fails permanently (HTTP 500 with max_attempts 1), and the ERROR_ page waits the same way.
    Before: the job was retried (asking the model again) and then marked failed with no file at all."""
    inbox = make_inbox(tmp_path)
    folder = inbox / "notes"
    folder.mkdir()
    away = tmp_path / "away"
    config = openai_config(tmp_path, inbox, server, retry={"max_attempts": 1})

    def answer(_body: object) -> str:
        if not away.exists():
            folder.rename(away)
            folder.write_text("not a folder")
        if kind == "ERROR_":
            raise RuntimeError("the model failed")  # the fake server turns it into an HTTP 500
        return "A kept answer."

    server.answer_fn = answer
    with DaemonProcess(config, tmp_path) as daemon:
        wait_until(lambda: "watching" in daemon.log(), timeout=20, what="daemon up")
        samples.make_png(folder / "q.png", size=(300, 400))
        wait_until(lambda: "Not a directory" in daemon.log(), timeout=30, what="the failed write")
        status = wait_until(
            lambda: (r := run_cli(config, tmp_path, "status")).returncode == 0 and "Waiting to write" in r.stdout and r,
            timeout=30,
            what="status to show the kept answer",
        )
        assert f"notes/{kind}" in status.stdout
        wait_until(lambda: daemon.log().count("Not a directory") >= 2, timeout=30, what="a second failed write")
        folder.unlink()
        away.rename(folder)
        [written] = wait_until(lambda: outputs(folder, kind), timeout=60, what="the kept output written")
        assert daemon.stop() == 0
    assert len(server.requests) == 1, "the model was asked once"
    if kind == "RESPONSE_":
        assert "A kept answer." in pdf_text(written)
    assert not db_rows(tmp_path / "db.sqlite3", "SELECT 1 FROM unwritten_outputs")
    [row] = db_rows(tmp_path / "db.sqlite3", "SELECT status, output_file FROM exchanges")
    assert row["output_file"] == written.name and row["status"] == ("ok" if kind == "RESPONSE_" else "error")
    assert not [p for p in folder.iterdir() if p.name.startswith(".syncthing.")]


# --- defect 9: status and conversations on a broken database -----------------------------------------------


def test_status_and_conversations_on_a_damaged_database_say_so_and_exit_74(tmp_path: Path) -> None:
    inbox = make_inbox(tmp_path)
    database = tmp_path / "db.sqlite3"
    database.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    config = write_config(tmp_path / "config.yaml", inbox, database)
    for args in (("status",), ("conversations", "list"), ("conversations", "stats")):
        result = run_cli(config, tmp_path, *args)
        assert result.returncode == 74, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert "is damaged or is not an eink-llm database" in result.stderr
        assert "What to do:" in result.stderr


def _can_bind_mount_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {tmp_path} {tmp_path} && mount -o remount,bind,ro {tmp_path}"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def test_status_on_a_wal_database_on_a_read_only_mount_says_so_and_exits_74(tmp_path: Path) -> None:
    """A WAL database (the daemon stopped cleanly) on a read-only bind mount (in a mount namespace of its own:
    unshare -m): SQLite cannot open it, as it cannot create the -shm file. Before: a traceback and exit 70."""
    if not _can_bind_mount_read_only(tmp_path):
        pytest.skip("no unshare/mount here (needs CAP_SYS_ADMIN)")
    inbox = make_inbox(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    database = state / "db.sqlite3"
    config = write_config(tmp_path / "config.yaml", inbox, database)
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from eink_llm.store import Store;"
            "s = Store.open(Path(sys.argv[1])); s.requeue_running(); s.close()",
            str(database),
        ],
        capture_output=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    command = (
        f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && "
        f"{sys.executable} -m eink_llm status -c {config}"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", command], env=clean_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 74, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"The database {database}" in result.stderr and "What to do:" in result.stderr
