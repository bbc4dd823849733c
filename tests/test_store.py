"""The SQLite store: migrations, the queue's rules, exchange numbering under concurrency."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from eink_llm.errors import StoreError
from eink_llm.store import MIGRATIONS, ExchangeResult, Store, utc_now


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "db" / "test.sqlite3") as opened:
        yield opened


def add(store: Store, name: str, sha: str = "a" * 64, hint: str | None = None) -> int:
    job = store.enqueue(Path(f"/in/{name}"), root=Path("/in"), sha256=sha, size=1, mtime_ns=1, conversation_hint=hint)
    assert job is not None
    return job


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    Store.open(path).close()
    with Store.open(path) as again:
        assert again.migrate() == []  # already applied
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert names == [name for name, _ in MIGRATIONS]
    columns = {r[1] for r in db.execute("PRAGMA table_info(exchanges)")}
    assert {
        "exchange_id",
        "conversation_id",
        "sequence_number",
        "input_file",
        "input_type",
        "response_text",
        "processing_time",
        "tokens_used",
        "created_at",
        "metadata",
        "input_sha256",
        "output_file",
        "status",
        "error_text",
        "backend",
        "model",
        "input_tokens",
        "output_tokens",
    } <= columns
    columns = {r[1] for r in db.execute("PRAGMA table_info(conversations)")}
    assert {
        "conversation_id",
        "user_id",
        "created_at",
        "last_activity",
        "total_exchanges",
        "status",
        "context_summary",
        "metadata",
    } <= columns
    db.close()


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot be opened"):
        Store.open(blocker / "db.sqlite3")


def test_enqueue_is_idempotent_per_path_and_content(store: Store) -> None:
    first = add(store, "q.pdf")
    assert store.enqueue(Path("/in/q.pdf"), root=Path("/in"), sha256="a" * 64, size=1, mtime_ns=2) is None
    assert add(store, "q.pdf", sha="b" * 64) != first  # new content at the same path is a new question
    assert add(store, "other.pdf") != first  # same content elsewhere too


def test_own_outputs_are_never_enqueued(store: Store) -> None:
    job = store.claim_job(utc_now()) if add(store, "q.pdf") else None
    assert job is not None
    exchange = store.reserve_exchange(
        job, conversation_id="conv_20260101_000000_00000000", new_conversation=True, input_type="pdf"
    )
    store.record_output(Path("/in/RESPONSE_x.pdf"), "c" * 64, exchange.exchange_id)
    assert store.is_own_output("c" * 64)
    assert store.enqueue(Path("/in/copy.pdf"), root=Path("/in"), sha256="c" * 64, size=1, mtime_ns=1) is None


def test_claim_order_retry_schedule_and_crash_requeue(store: Store) -> None:
    a, b = add(store, "a.pdf", "1" * 64), add(store, "b.pdf", "2" * 64)
    job = store.claim_job()
    assert job is not None and job.job_id == a and job.attempts == 1
    store.retry_later(a, at=utc_now() + timedelta(hours=1), error="429")
    job_b = store.claim_job()
    assert job_b is not None and job_b.job_id == b
    assert store.claim_job() is None  # a is not due yet, b is running
    assert store.requeue_running() == 1
    assert store.queue_counts() == {"pending": 2, "running": 0, "done": 0, "failed": 0}
    later = store.claim_job(utc_now() + timedelta(hours=2), only=[a])
    assert later is not None and later.job_id == a and later.attempts == 2


def test_one_conversation_runs_in_order(store: Store) -> None:
    conv = "conv_20260101_000000_00000000"
    first, second = add(store, "f1.pdf", "1" * 64, conv), add(store, "f2.pdf", "2" * 64, conv)
    other = add(store, "x.pdf", "3" * 64)
    claimed = store.claim_job()
    assert claimed is not None and claimed.job_id == first
    nxt = store.claim_job()
    assert nxt is not None and nxt.job_id == other  # second waits for first
    assert store.claim_job() is None
    exchange = store.reserve_exchange(claimed, conversation_id=conv, new_conversation=True, input_type="pdf")
    store.complete_exchange(exchange, ExchangeResult(status="ok", output_file=Path("/in/R.pdf"), response_text="hi"))
    after = store.claim_job()
    assert after is not None and after.job_id == second


def test_exchange_numbers_have_no_gap_or_duplicate_under_threads(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    conv = "conv_20260101_000000_00000000"
    with Store.open(path) as store:
        ids = [add(store, f"{i}.pdf", f"{i:064d}") for i in range(40)]
        first = store.get_job(ids[0])
        store.reserve_exchange(first, conversation_id=conv, new_conversation=True, input_type="pdf")
        numbers: list[int] = []
        lock = threading.Lock()

        def reserve(job_ids: list[int]) -> None:
            with Store.open(path) as own:  # a second connection, as another process would have
                for job_id in job_ids:
                    exchange = own.reserve_exchange(
                        own.get_job(job_id), conversation_id=conv, new_conversation=False, input_type="pdf"
                    )
                    with lock:
                        numbers.append(exchange.sequence_number)

        threads = [threading.Thread(target=reserve, args=(ids[1 + k :: 4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(numbers) == list(range(2, 41))
        # reserving again for the same job returns the same exchange
        again = store.reserve_exchange(
            store.get_job(ids[5]), conversation_id=conv, new_conversation=False, input_type="pdf"
        )
        assert again.sequence_number in numbers
        conversation = store.get_conversation(conv)
        assert conversation is not None and conversation.total_exchanges == 40


def test_history_lists_answered_exchanges_in_order(store: Store) -> None:
    conv = "conv_20260101_000000_00000000"
    for i in range(3):
        add(store, f"{i}.pdf", f"{i:064d}", conv)
    results = ["ok", "error", "ok"]
    for i, status in enumerate(results):
        job = store.claim_job()
        assert job is not None
        exchange = store.reserve_exchange(job, conversation_id=conv, new_conversation=i == 0, input_type="pdf")
        store.complete_exchange(
            exchange,
            ExchangeResult(
                status=status,  # type: ignore[arg-type]
                output_file=Path(f"/in/{i}.pdf"),
                response_text=f"a{i}",
            ),
        )
    history = store.history(conv, before_sequence=4)
    assert [e.sequence_number for e in history] == [1, 3]
    assert [e.response_text for e in history] == ["a0", "a2"]
    assert store.queue_counts()["failed"] == 1


def test_a_finished_job_is_never_put_back(store: Store) -> None:
    """A late failure (after the answer was recorded) cannot send an answered page round again."""
    job_id = add(store, "a.pdf")
    job = store.claim_job()
    assert job is not None
    exchange = store.reserve_exchange(
        job, conversation_id="conv_20260101_000000_00000000", new_conversation=True, input_type="pdf"
    )
    store.complete_exchange(exchange, ExchangeResult(status="ok", output_file=Path("/in/R.pdf"), response_text="hi"))
    store.retry_later(job_id, at=utc_now(), error="late failure")
    assert store.get_job(job_id).state == "done"
    assert store.claim_job() is None


def test_old_answer_copies_are_forgotten_but_still_recognised(store: Store) -> None:
    job_id = add(store, "a.pdf")
    job = store.claim_job()
    assert job is not None and job.job_id == job_id
    conversation = "conv_20260101_000000_00000000"
    exchange = store.reserve_exchange(job, conversation_id=conversation, new_conversation=True, input_type="pdf")
    store.record_output(Path("/in/R.pdf"), "f" * 64, exchange.exchange_id, b"%PDF-1.4 ours")
    assert store.forget_answer_pdfs(utc_now() - timedelta(days=1)) == 0  # written just now: kept
    record = store.answer_record(conversation, 1)
    assert record is not None and record.pdf == b"%PDF-1.4 ours"
    assert store.forget_answer_pdfs(utc_now() + timedelta(seconds=1)) == 1
    record = store.answer_record(conversation, 1)
    assert record is not None and record.pdf is None
    assert store.is_own_output("f" * 64)
