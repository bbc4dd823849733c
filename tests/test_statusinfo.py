"""The status snapshot and its two renderings, the heartbeat, the page's update policy, and the rules that keep
the page from ever being a question (without a daemon process: see test_status_page.py for that)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from eink_llm.budget import period_starts
from eink_llm.config import Config, load_config
from eink_llm.errors import ConfigError
from eink_llm.reader import read_input
from eink_llm.render.status import render_status
from eink_llm.retry import Breakers
from eink_llm.status_page import StatusKeeper
from eink_llm.statusinfo import budget_line, clock, outcome_line, service_line, take_snapshot, this_host
from eink_llm.store import MIGRATIONS, ExchangeResult, Heartbeat, ServiceState, Store
from eink_llm.store.schema import statements
from eink_llm.watch_names import is_candidate
from tests.harness import clean_env, pdf_text, write_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_config(inbox: Path, **status_page: object) -> Config:
    return Config.model_validate({"watch": {"folders": [str(inbox)]}, "status_page": status_page})


def status(tmp_path: Path, database: Path) -> str:
    config = write_config(tmp_path / "c.yaml", tmp_path / "inbox", database)
    result = subprocess.run(
        [sys.executable, "-m", "eink_llm", "status", "-c", str(config)],
        env=clean_env(tmp_path, TZ="UTC"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_status_tells_running_stopped_and_not_responding_from_the_heartbeat(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    now = datetime.now(UTC)
    with Store.open(database) as store:
        assert "no daemon has run on this database yet" in status(tmp_path, database)
        store.beat(Heartbeat(4242, this_host(), "9.9.9", now - timedelta(hours=2), now - timedelta(seconds=2)))
        running = status(tmp_path, database)
        assert "Daemon: Running since" in running and "version 9.9.9, pid 4242" in running and "Up 2.0 h" in running
        store.beat(Heartbeat(4242, this_host(), "9.9.9", now - timedelta(hours=2), now - timedelta(minutes=5)))
        stale = status(tmp_path, database)
        assert "Not responding: its last sign of life was at" in stale and "crashed or been killed" in stale
        assert "not being asked" in stale  # nothing is said about the AI service by a dead daemon
        store.beat(Heartbeat(4242, "elsewhere", "9.9.9", now - timedelta(hours=2), now, stopped_at=now))
        stopped = status(tmp_path, database)
        assert "Daemon: Stopped at" in stopped and "pid 4242 on elsewhere" in stopped


def test_the_heartbeat_carries_the_services_and_shrugs_off_damage(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with Store.open(tmp_path / "db.sqlite3") as store:
        assert store.heartbeat() is None
        down = ServiceState(3, True, now + timedelta(seconds=30))
        store.beat(Heartbeat(1, "h", "v", now, now, None, {"openai http://x/v1": down}))
        beat = store.heartbeat()
        assert beat is not None and beat.services == {"openai http://x/v1": down} and beat.stopped_at is None
    raw = sqlite3.connect(tmp_path / "db.sqlite3")
    raw.execute("UPDATE daemon_heartbeat SET services = '{not json'")
    raw.commit()
    raw.close()
    with Store.open(tmp_path / "db.sqlite3") as store:
        beat = store.heartbeat()
        assert beat is not None and beat.services == {}


def test_a_service_down_in_the_heartbeat_is_down_in_the_snapshot(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "watch": {"folders": [str(tmp_path)]},
            "llm": {"backend": "openai", "base_url": "http://x/v1", "model": "m", "timeout_seconds": 120},
        }
    )
    now = datetime.now(UTC).replace(microsecond=0)
    with Store.open(tmp_path / "db.sqlite3") as store:
        probe = now + timedelta(minutes=10)
        store.beat(Heartbeat(1, "h", "v", now, now, None, {"openai http://x/v1": ServiceState(3, True, probe)}))
        (service,) = take_snapshot(store, config, now=now).services
        assert (service.state, service.when, service.failures) == ("down", probe, 3)
        store.beat(Heartbeat(1, "h", "v", now, now, None, {"openai http://x/v1": ServiceState(1, False, None)}))
        assert take_snapshot(store, config, now=now).services[0].state == "slow"
        store.beat(Heartbeat(1, "h", "v", now, now, None, {}))
        assert take_snapshot(store, config, now=now).services[0].state == "answering"
        # a question with the model for more than half its timeout: slow, since when
        job_id = store.enqueue(tmp_path / "q.pdf", root=tmp_path, sha256="c" * 64, size=1, mtime_ns=1)
        assert store.claim_job(only=[job_id] if job_id else []) is not None
        later = datetime.now(UTC) + timedelta(seconds=61)
        store.beat(Heartbeat(1, "h", "v", now, later, None, {}))
        (service,) = take_snapshot(store, config, now=later).services
        assert service.state == "slow" and service.when is not None and service.when <= later
        assert "slow, no answer yet to a question sent at" in service_line(service, later)


def test_the_page_is_rewritten_only_when_it_changes_and_at_most_once_per_interval(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clock = Clock()
    with Store.open(tmp_path / "db.sqlite3") as store:
        keeper = StatusKeeper(store, make_config(inbox, min_interval=60), Breakers, clock=clock)
        page = inbox / "STATUS.pdf"
        keeper.tick()
        first = page.stat().st_ino
        assert "Nothing in progress" in pdf_text(page)
        store.enqueue(inbox / "[x](y) *a_b* #1.pdf", root=inbox, sha256="a" * 64, size=1, mtime_ns=1)
        clock.now += 10
        keeper.tick()
        assert page.stat().st_ino == first  # changed, but within the interval since the last write
        clock.now += 51
        keeper.tick()
        second = page.stat().st_ino
        assert second != first
        text = " ".join(pdf_text(page).split())
        assert "Waiting: 1: [x](y) *a_b* #1.pdf" in text  # a hostile name is shown as it is, not as Markdown
        clock.now += 600
        keeper.tick()
        assert page.stat().st_ino == second  # nothing changed: not rewritten, however long it has been
        keeper.stop()  # the last word ignores the interval
        assert page.stat().st_ino != second
        assert "eink-llm is STOPPED" in pdf_text(page)


def test_a_page_that_cannot_be_written_costs_nothing(tmp_path: Path) -> None:
    clock = Clock()
    gone = tmp_path / "unmounted"
    with Store.open(tmp_path / "db.sqlite3") as store:
        keeper = StatusKeeper(store, make_config(gone), Breakers, clock=clock)
        keeper.tick()  # logged, not raised
        gone.mkdir()
        clock.now += 10
        keeper.tick()
        assert (gone / "STATUS.pdf").is_file()


def test_the_page_fits_one_page_on_the_smallest_device(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = Config.model_validate(
        {"watch": {"folders": [str(inbox)]}, "output": {"device": "a5", "font_size": 24}, "status_page": {}}
    )
    with Store.open(tmp_path / "db.sqlite3") as store:
        for number in range(8):
            store.enqueue(
                inbox / f"{'long name ' * 8}{number}.pdf", root=inbox, sha256=f"{number}" * 64, size=1, mtime_ns=1
            )
        keeper = StatusKeeper(store, config, Breakers, clock=Clock())
        keeper.tick()
    assert pdf_text(inbox / "STATUS.pdf").count(" / 1") == 1  # "1 / 1" in the footer


def test_our_status_page_is_recognised_by_its_metadata_even_when_renamed(tmp_path: Path) -> None:
    pdf, pages = render_status("# eink-llm is running\n\nSince 14:02.\n")
    assert pages == 1
    (tmp_path / "renamed.pdf").write_bytes(pdf)
    assert read_input(tmp_path / "renamed.pdf").status_page
    # a tool that dropped our Info key but kept the XMP: still ours
    xmp_only = pdf.replace(b"/EinkLLMKind (status)", b"/EinkLLMKinx (status)")
    (tmp_path / "xmp-only.pdf").write_bytes(xmp_only)
    assert read_input(tmp_path / "xmp-only.pdf").status_page
    neither = xmp_only.replace(b"<einkllm:kind>status</einkllm:kind>", b"<einkllm:kinx>status</einkllm:kinx>")
    (tmp_path / "neither.pdf").write_bytes(neither)
    assert not read_input(tmp_path / "neither.pdf").status_page


def test_the_page_name_is_reserved_at_the_top_of_a_watched_folder_only(tmp_path: Path) -> None:
    reserved = frozenset({"status.pdf"})
    assert not is_candidate(tmp_path / "STATUS.pdf", tmp_path, reserved)
    assert not is_candidate(tmp_path / "Status.PDF", tmp_path, reserved)
    assert is_candidate(tmp_path / "math" / "STATUS.pdf", tmp_path, reserved)  # the user's own, in a subfolder
    assert is_candidate(tmp_path / "STATUS.pdf", tmp_path)


@pytest.mark.parametrize("name", ["../STATUS.pdf", "sub/STATUS.pdf", ".STATUS.pdf", "STATUS.txt", "RESPONSE_x.pdf"])
def test_the_page_name_must_be_a_plain_pdf_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"status_page": {"name": name}}))
    with pytest.raises(ConfigError, match=r"status_page\.name \(line 2, column 3\): .*plain file name ending in \.pdf"):
        load_config(path)


def answered(store: Store, inbox: Path, name: str, *, tokens: int, ok: bool = True) -> None:
    job_id = store.enqueue(inbox / name, root=inbox, sha256=name.encode().hex().ljust(64, "0")[:64], size=1, mtime_ns=1)
    job = store.claim_job(only=[job_id] if job_id else [])
    assert job is not None
    exchange = store.reserve_exchange(job, conversation_id=f"conv_{name}", new_conversation=True, input_type="pdf")
    result = ExchangeResult(
        status="ok" if ok else "error",
        output_file=inbox / f"RESPONSE_{name}",
        input_tokens=tokens,
        profile="default",
        error_text=None if ok else "The AI service could not be reached.\nWhat to do: wait.",
    )
    store.complete_exchange(exchange, result)


def test_budgets_and_the_latest_outcomes_in_words(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    config = Config.model_validate(
        {
            "watch": {"folders": [str(inbox)]},
            "profiles": {"default": {"budget": {"daily_tokens": 100, "monthly_tokens": 1000}}},
        }
    )
    now = datetime.now(UTC)
    with Store.open(tmp_path / "db.sqlite3") as store:
        answered(store, inbox, "first.pdf", tokens=60)
        snapshot = take_snapshot(store, config, now=now)
        (line,) = (budget_line(b, now) for b in snapshot.budgets)
        assert line.startswith("default: 60 of 1,000 tokens this month (60 of 100 tokens today); resets "), line
        answered(store, inbox, "second.pdf", tokens=50, ok=False)
        answered(store, inbox, "third.pdf", tokens=50)
        snapshot = take_snapshot(store, config, now=now)
        tomorrow = period_starts(now)[1]
        assert budget_line(snapshot.budgets[0], now).endswith(f"Budget spent until {clock(tomorrow, now)}")
        lines = [outcome_line(o, now) for o in snapshot.recent]
        assert [line.split(" ", 1)[1] for line in lines] == [
            "answered third.pdf",
            "ERROR second.pdf: The AI service could not be reached. What to do: wait.",
            "answered first.pdf",
        ]


def test_status_on_a_database_older_than_the_heartbeat_says_it_cannot_tell(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for number, (name, script) in enumerate(MIGRATIONS[:3], start=1):
        for statement in statements(script):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00.000Z')", (number, name))
    db.commit()
    db.close()
    assert "Daemon: Unknown: the database is older than this version" in status(tmp_path, database)


def test_hostile_names_stay_one_printable_line(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with Store.open(tmp_path / "db.sqlite3") as store:
        answered(store, inbox, "evil\n# heading\x1b[31m.pdf", tokens=1)
        (outcome,) = take_snapshot(store, make_config(inbox)).recent
    line = outcome_line(outcome, datetime.now(UTC))
    assert "\n" not in line and "\x1b" not in line and line.endswith("answered evil # heading?[31m.pdf")


def test_a_page_turned_off_is_removed_only_if_it_is_ours_and_unchanged(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    folders = [{"path": str(first)}, {"path": str(second)}]
    with Store.open(tmp_path / "db.sqlite3") as store:
        keeper = StatusKeeper(store, Config.model_validate({"watch": {"folders": folders}}), Breakers, clock=Clock())
        keeper.tick()
        assert (first / "STATUS.pdf").is_file() and (second / "STATUS.pdf").is_file()
        with (second / "STATUS.pdf").open("ab") as page:
            page.write(b"\n% a pen stroke, saved into the file by the tablet\n")
        off = [{"path": str(first), "status_page": False}, {"path": str(second), "status_page": False}]
        keeper.configure(Config.model_validate({"watch": {"folders": off}}))
        keeper.tick()
    assert not (first / "STATUS.pdf").exists()  # ours, unchanged: it would only tell old news
    assert (second / "STATUS.pdf").is_file()  # written on: not ours to delete
