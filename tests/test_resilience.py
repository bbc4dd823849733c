"""Never lose or repeat a page: kill -9, outages, signals, sd_notify, reloads, a vanished folder — with the real
daemon process and a local server that injects faults."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from eink_llm.retry import CircuitBreaker
from tests import samples
from tests.fakes import FakeLLMServer, Fault
from tests.harness import DaemonProcess, clean_env, db_rows, outputs, wait_until, write_config


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def config_for(tmp_path: Path, inbox: Path, server: FakeLLMServer, **sections: dict[str, object]) -> Path:
    llm = {"backend": "openai", "base_url": server.base_url, "model": "m1", "timeout_seconds": 5}
    sections.setdefault("llm", {})
    sections["llm"] = {**llm, **sections["llm"]}
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "db.sqlite3", **sections)


def make_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox


def test_circuit_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, probe_interval=10, clock=lambda: now[0])
    assert breaker.allow_claim() and not breaker.is_open
    assert not breaker.record_failure()
    assert breaker.record_failure() and breaker.is_open
    assert not breaker.allow_claim()
    now[0] = 10.5
    assert breaker.allow_claim()  # one probe
    assert not breaker.allow_claim()
    assert breaker.record_success() and not breaker.is_open and breaker.allow_claim()


def test_kill_9_at_random_moments_loses_and_repeats_nothing(tmp_path: Path, server: FakeLLMServer) -> None:
    """24 files in flight, the daemon killed with SIGKILL at random moments, restarted each time: in the end
    every input has exactly one RESPONSE_ and one exchange row, and no temp file is left."""

    def slow_answer(body: dict[str, object]) -> str:
        time.sleep(0.15)  # keep answers in flight when the kill lands
        return "An answer."

    server.answer_fn = slow_answer
    inbox = make_inbox(tmp_path)
    config = config_for(tmp_path, inbox, server, service={"workers": 2})
    names = [f"q{i:02d}" for i in range(24)]
    for name in names[:12]:
        samples.make_png(inbox / f"{name}.png", size=(400, 520))
    rng = random.Random(20261125)
    for round_number in range(7):
        daemon = DaemonProcess(config, tmp_path).start()
        if round_number == 1:  # more files arrive while the daemon is being killed and restarted
            for name in names[12:]:
                samples.make_png(inbox / f"{name}.png", size=(400, 520))
        time.sleep(rng.uniform(0.6, 2.0))  # the kill point, not a wait for a condition
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(10)
        daemon.log_file.close()
    with DaemonProcess(config, tmp_path) as daemon:
        wait_until(
            lambda: len(outputs(inbox)) >= len(names) and _all_done(tmp_path),
            timeout=90,  # under the per-test timeout (120 s), so this message is what a slow run reports
            what="every input answered after the kills",
        )
        assert daemon.stop() == 0

    answers = outputs(inbox)
    stems = sorted(p.name.rsplit("_", 1)[-1].removesuffix(".pdf") for p in answers)
    assert stems == names, "exactly one output per input"
    assert all(p.name.startswith("RESPONSE_") for p in answers)
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT input_file, status FROM exchanges")
    assert sorted(r["input_file"] for r in rows) == [f"{n}.png" for n in names]
    assert {r["status"] for r in rows} == {"ok"}
    assert not [p for p in inbox.iterdir() if p.name.startswith(".syncthing.")]


def _all_done(tmp_path: Path) -> bool:
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
    return bool(rows) and all(r["state"] == "done" for r in rows)


def test_outage_does_not_burn_the_backlog_into_errors(tmp_path: Path, server: FakeLLMServer) -> None:
    """The model is down while 30 files queue up; all 30 are answered once it is back, none as ERROR_.
    (The issue's "couple of minutes" is scaled down: probes every 0.5 s and max_attempts 2 make the same
    point in ten seconds — without the breaker, every file would be an ERROR_ within a few seconds.)"""
    server.outage(Fault.status(503))
    inbox = make_inbox(tmp_path)
    config = config_for(
        tmp_path,
        inbox,
        server,
        retry={"max_attempts": 2, "outage_after_failures": 3, "probe_interval_seconds": 0.5},
    )
    with DaemonProcess(config, tmp_path) as daemon:
        for i in range(30):
            samples.make_png(inbox / f"page{i:02d}.png", size=(300, 400))
        wait_until(
            lambda: len(db_rows(tmp_path / "db.sqlite3", "SELECT 1 FROM jobs")) == 30,
            timeout=30,
            what="30 files queued",
        )
        failed_during_outage = len(server.requests)
        time.sleep(8)  # the outage lasts this long: a duration under test, not a wait for a condition
        assert not outputs(inbox, "ERROR_")
        assert len(server.requests) - failed_during_outage < 25  # probing, not hammering
        server.clear_outage()
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 30, timeout=60, what="all 30 answered")
        assert daemon.stop() == 0
    assert not outputs(inbox, "ERROR_")
    assert "seems to be down" in daemon.log() and "answers again" in daemon.log()


def test_one_services_outage_does_not_hold_up_another(tmp_path: Path, server: FakeLLMServer) -> None:
    """Circuit breakers are per AI service: with the cloud model down, the folder answered by the local model
    keeps getting answers at once, and the cloud folder's pages wait (no ERROR_) until their service is back."""
    server.outage(Fault.status(503))
    inbox = make_inbox(tmp_path)
    (inbox / "local").mkdir()
    with FakeLLMServer() as local:
        config = config_for(
            tmp_path,
            inbox,
            server,
            retry={"max_attempts": 2, "outage_after_failures": 2, "probe_interval_seconds": 0.5},
            watch={"folders": [{"path": str(inbox), "subfolders": {"local": "local"}}]},
            profiles={"local": {"llm": {"base_url": local.base_url, "model": "small"}}},
        )
        with DaemonProcess(config, tmp_path) as daemon:
            for i in range(6):
                samples.make_png(inbox / f"cloud{i}.png", size=(300, 400))
            wait_until(lambda: "seems to be down" in daemon.log(), timeout=30, what="the cloud breaker to open")
            for i in range(4):
                samples.make_png(inbox / "local" / f"local{i}.png", size=(300, 400))
            wait_until(
                lambda: len(outputs(inbox / "local", "RESPONSE_")) == 4, timeout=30, what="local answers during outage"
            )
            assert not list(inbox.glob("RESPONSE_*")) and not outputs(inbox, "ERROR_")
            server.clear_outage()
            wait_until(lambda: len(list(inbox.glob("RESPONSE_*"))) == 6, timeout=60, what="cloud answers afterwards")
            assert daemon.stop() == 0
    assert not outputs(inbox, "ERROR_") and not outputs(inbox / "local", "ERROR_")


class NotifySocket:
    """A stand-in for systemd's notify socket: a Unix datagram socket that collects messages."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="sdn", dir="/tmp")  # short: Unix socket paths are limited
        self.path = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def test_sd_notify_sighup_reload_and_sigterm(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = make_inbox(tmp_path)
    config = config_for(tmp_path, inbox, server, service={"shutdown_grace_seconds": 5})
    notify = NotifySocket()
    try:
        daemon = DaemonProcess(config, tmp_path, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000"})
        with daemon:
            wait_until(lambda: any(m.startswith("READY=1") for m in notify.collect()), timeout=20, what="READY=1")
            wait_until(lambda: any(m.startswith("WATCHDOG=1") for m in notify.collect()), timeout=10, what="WATCHDOG=1")
            assert any("STATUS=queue: 0 waiting" in m for m in notify.collect())

            # SIGHUP with a new model: reloaded, and the next question uses it
            data = yaml.safe_load(config.read_text())
            data["llm"]["model"] = "m2"
            config.write_text(yaml.safe_dump(data))
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in daemon.log(), timeout=10, what="reload")
            samples.make_png(inbox / "after-reload.png", size=(300, 400))
            wait_until(lambda: server.requests, timeout=20, what="a request")
            assert server.requests[-1].body["model"] == "m2"

            # SIGHUP with an invalid config: the old one stays, and the daemon still answers
            config.write_text("watch: {settle_seconds: -5}\n")
            daemon.process.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload failed" in daemon.log(), timeout=10, what="reload refused")
            samples.make_png(inbox / "still-works.png", size=(300, 400))
            wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=20, what="answer after bad reload")
            assert server.requests[-1].body["model"] == "m2"

            started = time.monotonic()
            assert daemon.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 5
        messages = notify.collect()
    finally:
        notify.close()
    kinds = [m.split("=", 1)[0] for m in messages]
    assert kinds[0] == "READY"
    reloading = [i for i, m in enumerate(messages) if m.startswith("RELOADING=1")]
    assert len(reloading) == 2
    for index in reloading:
        assert "MONOTONIC_USEC=" in messages[index]
        assert messages[index + 1].startswith("READY=1")  # READY follows each reload, good or refused
    assert kinds[-1] == "STOPPING"


def test_sigterm_lets_the_answer_in_progress_finish(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = make_inbox(tmp_path)
    server.script(Fault.slow(2.0))
    config = config_for(tmp_path, inbox, server, service={"shutdown_grace_seconds": 10})
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_png(inbox / "q.png", size=(300, 400))
        server.wait_for_requests(1, timeout=20)
        assert daemon.stop(signal.SIGTERM) == 0
    assert len(outputs(inbox, "RESPONSE_")) == 1  # finished within the grace period, not abandoned


def test_a_deleted_watch_folder_exits_non_zero(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = make_inbox(tmp_path)
    config = config_for(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        wait_until(lambda: "watching" in daemon.log(), timeout=20, what="daemon up")
        shutil.rmtree(inbox)
        assert daemon.process is not None
        code = daemon.process.wait(20)
        daemon.log_file.close()
    assert code != 0
    assert "watcher stopped" in daemon.log()


def test_status_is_read_only_and_shows_queue_exchanges_and_failures(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = make_inbox(tmp_path)
    config = config_for(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_png(inbox / "good.png", size=(300, 400))
        samples.make_text_as_pdf(inbox / "bad.pdf")
        wait_until(lambda: len(outputs(inbox)) == 2, timeout=30, what="two outputs")
        result = subprocess.run(
            [sys.executable, "-m", "eink_llm", "status", "-c", str(config)],
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert daemon.stop() == 0
    assert result.returncode == 0, result.stderr
    assert "1 done" in result.stdout and "1 failed" in result.stdout
    assert "good.png" in result.stdout and "bad.pdf" in result.stdout
    assert "not a PDF" in result.stdout


UNITS = Path(__file__).resolve().parents[1] / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["eink-llm.service", "eink-llm-user.service"])
def test_unit_files_verify(tmp_path: Path, unit: str) -> None:
    text = (UNITS / unit).read_text()
    executable = shutil.which("eink-llm") or sys.executable
    # verify checks that ExecStart's binary exists: point it at this machine's install
    text = "\n".join(
        f"ExecStart={executable} run" if line.startswith("ExecStart=") else line for line in text.splitlines()
    )
    copy = tmp_path / "eink-llm.service"
    copy.write_text(text + "\n")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "eink-llm.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def _exposure(unit: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    line = next(line for line in result.stdout.splitlines() if "Overall exposure level" in line)
    return float(line.split(":")[1].split()[0])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_system_unit_exposure_is_at_most_2_5() -> None:
    assert _exposure(UNITS / "eink-llm.service") <= 2.5


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_user_unit_exposure_is_at_most_6_5_and_its_optional_sandbox_verifies(tmp_path: Path) -> None:
    """The user unit uses what a user manager can apply without privileges (seccomp filters, a private key
    ring): 9.3 before, 6.2 now (README). Its commented-out block for systems that allow unprivileged user
    namespaces must stay valid and bring it under 4."""
    unit = UNITS / "eink-llm-user.service"
    assert _exposure(unit) <= 6.5
    assert "\nPrivateUsers=" not in unit.read_text(), "PrivateUsers= breaks the unit where userns is restricted"
    optional = "\n".join(
        line[1:] if line.startswith(("#PrivateUsers=", "#Protect", "#Private", "#ReadWritePaths=")) else line
        for line in unit.read_text().splitlines()
    )
    sandboxed = tmp_path / "eink-llm.service"
    sandboxed.write_text(optional + "\n")
    assert "\nPrivateUsers=yes" in optional and _exposure(sandboxed) < 4
