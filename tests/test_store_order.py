"""One rule for the order queued jobs are taken in (``store.queue.order_key``), whichever way a job was queued:
the daemon's and ``process``'s intake, the store's own ``enqueue``, and migration 003's backfill of the jobs an
older version had queued."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eink_llm import intake, naming
from eink_llm.config import Config, load_config
from eink_llm.oneshot import process_files
from eink_llm.store import MIGRATIONS, Store
from eink_llm.store.queue import order_key
from eink_llm.store.schema import statements
from tests.harness import write_config
from tests.samples import make_pdf

CONV = "conv_20260101_120000_0123abcd"


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "db.sqlite3") as opened:
        yield opened


def folder_mode(inbox: Path) -> Config:
    return Config.model_validate({"watch": {"folders": [{"path": str(inbox), "conversations": "per-subfolder"}]}})


def test_the_rule() -> None:
    """The conversation a file name names, else the folder-mode folder, else the file itself."""
    assert order_key(Path("/in/a/q.pdf"), CONV, Path("/in/a")) == f"conv:{CONV}"
    assert order_key(Path("/in/a/q.pdf"), None, Path("/in/a")) == "folder:/in/a"
    assert order_key(Path("/in/q.pdf"), None, None) == "path:/in/q.pdf"
    assert order_key(Path("/in/q.pdf"), CONV) == f"conv:{CONV}"


def test_intake_and_the_store_make_the_same_key(tmp_path: Path, store: Store) -> None:
    """The daemon's intake thread and ``process`` queue through ``intake.enqueue``; a caller of the store's
    ``enqueue`` passes the parts. Both end in the same key, folders included."""
    inbox = tmp_path / "inbox"
    config = folder_mode(inbox)
    files = {
        inbox / "a" / "q1.pdf": "folder:" + str(inbox / "a"),
        inbox / "b" / "q2.pdf": "folder:" + str(inbox / "b"),
        inbox / "top.pdf": "path:" + str(inbox / "top.pdf"),  # per-subfolder: the folder itself is per file
        inbox / "a" / f"RESPONSE_{CONV}_ex001_q.pdf": f"conv:{CONV}",  # a named conversation wins over the folder
    }
    for n, (path, expected) in enumerate(files.items()):
        job_id = intake.enqueue(store, config, path, f"{n:064x}", 1, 1)
        assert job_id is not None
        assert store.get_job(job_id).order_key == expected
        direct = store.enqueue(  # other bytes at the same path: a second job
            path,
            root=inbox,
            sha256=f"{n + 100:064x}",
            size=1,
            mtime_ns=1,
            conversation_hint=naming.find_conversation_id(path.name),
            conversation_folder=config.conversation_folder(path),
        )
        assert direct is not None
        assert store.get_job(direct).order_key == expected


def test_jobs_of_one_folder_run_in_order_two_folders_in_parallel(tmp_path: Path, store: Store) -> None:
    inbox = tmp_path / "inbox"
    config = folder_mode(inbox)
    first = intake.enqueue(store, config, inbox / "a" / "q1.pdf", "1" * 64, 1, 1)
    second = intake.enqueue(store, config, inbox / "a" / "q2.pdf", "2" * 64, 1, 1)
    other = intake.enqueue(store, config, inbox / "b" / "q3.pdf", "3" * 64, 1, 1)
    claimed = store.claim_job()
    assert claimed is not None and claimed.job_id == first
    claimed = store.claim_job()
    assert claimed is not None and claimed.job_id == other  # q2 waits for q1: same folder, one conversation
    assert store.claim_job() is None
    store.finish_job(first or 0, "done")
    claimed = store.claim_job()
    assert claimed is not None and claimed.job_id == second


def test_process_command_queues_with_the_same_key(tmp_path: Path) -> None:
    """``eink-llm process`` (the real command path, echo backend) stores the rule's key for each file."""
    inbox = tmp_path / "inbox"
    (inbox / "a").mkdir(parents=True)
    (inbox / "b").mkdir()
    pages = [make_pdf(inbox / "a" / "q1.pdf", pages=1), make_pdf(inbox / "b" / "q2.pdf", pages=1)]
    database = tmp_path / "db.sqlite3"
    config = write_config(
        tmp_path / "config.yaml",
        inbox,
        database,
        watch={"folders": [{"path": str(inbox), "conversations": "per-subfolder"}]},
    )
    results = process_files(load_config(config), pages)
    assert sorted(r.path for r in results) == pages
    with Store.open(database, readonly=True) as store:
        for page in pages:
            job = store.find_job(page, intake.content_id(page, page.stat().st_size, 0, 1 << 30))
            assert job is not None
            assert job.order_key == order_key(page, None, page.parent) == f"folder:{page.parent}"


def test_migration_003_backfilled_the_same_keys(tmp_path: Path) -> None:
    """Jobs queued before migration 003 (which brought folder mode, so none had a folder) got their key from the
    migration's SQL. It is shipped and never edited; it must agree with the rule for every such job."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    before = [m for m in MIGRATIONS if m[0] < "003"]
    assert [name for name, _ in before] == ["001_initial", "002_profiles_and_cost"]
    for version, (name, sql) in enumerate(before, start=1):
        for statement in statements(sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00Z')", (version, name))
    old = [("/in/q.pdf", None), (f"/in/RESPONSE_{CONV}_ex001_q.pdf", CONV), ("/in/sub/n.pdf", None)]
    for n, (job_path, hint) in enumerate(old):
        db.execute(
            "INSERT INTO jobs (path, root, sha256, size, mtime_ns, conversation_hint, next_attempt_at, created_at,"
            " updated_at) VALUES (?, '/in', ?, 1, 1, ?, 'x', 'x', 'x')",
            (job_path, f"{n:064x}", hint),
        )
    db.close()
    with Store.open(path) as store:
        for n, (job_path, hint) in enumerate(old):
            job = store.find_job(Path(job_path), f"{n:064x}")
            assert job is not None
            assert job.order_key == order_key(Path(job_path), hint)
