"""The schema, as numbered, named migrations (applied ones are recorded in ``schema_migrations``).

Never edit a migration that has shipped: add a new one at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from eink_llm.errors import StoreError

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_initial",
        """
        CREATE TABLE conversations (
            conversation_id TEXT PRIMARY KEY,
            user_id         TEXT,
            created_at      TEXT NOT NULL,
            last_activity   TEXT NOT NULL,
            total_exchanges INTEGER NOT NULL DEFAULT 0,
            status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
            context_summary TEXT,
            metadata        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE jobs (
            job_id            INTEGER PRIMARY KEY,
            path              TEXT NOT NULL,
            root              TEXT NOT NULL,
            sha256            TEXT NOT NULL,
            size              INTEGER NOT NULL,
            mtime_ns          INTEGER NOT NULL,
            user_id           TEXT,
            conversation_hint TEXT,
            state             TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts          INTEGER NOT NULL DEFAULT 0,
            next_attempt_at   TEXT NOT NULL,
            last_error        TEXT,
            created_at        TEXT NOT NULL,
            updated_at        TEXT NOT NULL,
            UNIQUE (path, sha256)
        );
        CREATE INDEX jobs_claim ON jobs (state, next_attempt_at);
        CREATE TABLE exchanges (
            exchange_id      INTEGER PRIMARY KEY,
            conversation_id  TEXT NOT NULL REFERENCES conversations (conversation_id),
            sequence_number  INTEGER NOT NULL,
            job_id           INTEGER UNIQUE REFERENCES jobs (job_id),
            input_file       TEXT NOT NULL,
            input_sha256     TEXT,
            input_type       TEXT,
            question_text    TEXT,
            response_text    TEXT,
            status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'error')),
            error_text       TEXT,
            output_file      TEXT,
            backend          TEXT,
            model            TEXT,
            input_tokens     INTEGER,
            output_tokens    INTEGER,
            tokens_used      INTEGER,
            processing_time  REAL,
            created_at       TEXT NOT NULL,
            completed_at     TEXT,
            metadata         TEXT NOT NULL DEFAULT '{}',
            UNIQUE (conversation_id, sequence_number)
        );
        CREATE TABLE outputs (
            sha256      TEXT PRIMARY KEY,
            path        TEXT NOT NULL,
            exchange_id INTEGER REFERENCES exchanges (exchange_id),
            created_at  TEXT NOT NULL
        );
        CREATE INDEX outputs_path ON outputs (path);
        """,
    ),
    (
        "002_profiles_and_cost",
        """
        ALTER TABLE exchanges ADD COLUMN profile TEXT;
        ALTER TABLE exchanges ADD COLUMN cost REAL NOT NULL DEFAULT 0;
        CREATE INDEX exchanges_budget ON exchanges (profile, completed_at);
        """,
    ),
    (
        "003_conversations_on_paper",
        """
        ALTER TABLE exchanges ADD COLUMN transcription TEXT;
        ALTER TABLE conversations ADD COLUMN summary_through INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outputs ADD COLUMN pdf BLOB;
        ALTER TABLE jobs ADD COLUMN order_key TEXT;
        UPDATE jobs SET order_key = COALESCE('conv:' || conversation_hint, 'path:' || path);
        CREATE INDEX jobs_order ON jobs (order_key, state);
        CREATE INDEX jobs_path_state ON jobs (path, state);
        CREATE TABLE page_prints (
            job_id     INTEGER NOT NULL REFERENCES jobs (job_id),
            page_index INTEGER NOT NULL,
            print      BLOB NOT NULL,
            PRIMARY KEY (job_id, page_index)
        );
        CREATE TABLE folder_conversations (
            folder          TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id)
        );
        CREATE VIRTUAL TABLE exchange_search USING fts5 (
            transcription, question_text, response_text,
            content = 'exchanges', content_rowid = 'exchange_id',
            tokenize = 'unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER exchange_search_insert AFTER INSERT ON exchanges BEGIN
            INSERT INTO exchange_search (rowid, transcription, question_text, response_text)
            VALUES (new.exchange_id, new.transcription, new.question_text, new.response_text);
        END;
        CREATE TRIGGER exchange_search_delete AFTER DELETE ON exchanges BEGIN
            INSERT INTO exchange_search (exchange_search, rowid, transcription, question_text, response_text)
            VALUES ('delete', old.exchange_id, old.transcription, old.question_text, old.response_text);
        END;
        CREATE TRIGGER exchange_search_update AFTER UPDATE OF transcription, question_text, response_text
        ON exchanges BEGIN
            INSERT INTO exchange_search (exchange_search, rowid, transcription, question_text, response_text)
            VALUES ('delete', old.exchange_id, old.transcription, old.question_text, old.response_text);
            INSERT INTO exchange_search (rowid, transcription, question_text, response_text)
            VALUES (new.exchange_id, new.transcription, new.question_text, new.response_text);
        END;
        INSERT INTO exchange_search (exchange_search) VALUES ('rebuild');
        """,
    ),
    (
        "004_daemon_heartbeat",
        """
        CREATE TABLE daemon_heartbeat (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            pid        INTEGER NOT NULL,
            host       TEXT NOT NULL,
            version    TEXT NOT NULL,
            started_at TEXT NOT NULL,
            beat_at    TEXT NOT NULL,
            stopped_at TEXT,
            services   TEXT NOT NULL DEFAULT '{}'
        );
        """,
    ),
    (
        "005_unwritten_outputs",
        """
        CREATE TABLE unwritten_outputs (
            exchange_id     INTEGER PRIMARY KEY REFERENCES exchanges (exchange_id),
            path            TEXT NOT NULL,
            pdf             BLOB NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error      TEXT,
            created_at      TEXT NOT NULL
        );
        CREATE INDEX unwritten_due ON unwritten_outputs (next_attempt_at);
        """,
    ),
)


def statements(script: str) -> Iterator[str]:
    """The statements of a migration, one at a time (``executescript`` would commit our transaction, and a
    trigger body holds semicolons of its own)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise StoreError("A migration ends in an incomplete statement.", "This is a bug; please report it.")
