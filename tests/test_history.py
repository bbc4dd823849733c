"""The history commands (`eink-llm conversations …`) on a real database built through the Store API.

Most checks run the real `eink-llm` process; the search-syntax and date checks call `eink_llm.history`
directly (the same functions the CLI calls) to stay fast.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from eink_llm import history, history_format
from eink_llm.errors import EX_IOERR, EX_NOINPUT, EX_USAGE, HistoryArgumentError
from eink_llm.store import MIGRATIONS, Conversation, Exchange, ExchangeResult, Store
from eink_llm.store.schema import statements
from tests.harness import clean_env

PLANTS = "conv_20260101_090000_aaaaaaaa"
NOTES = "conv_20260102_090000_bbbbbbbb"
EMPTY_TITLE = "conv_20260103_090000_cccccccc"


@dataclass(frozen=True)
class Spec:
    conversation: str
    status: str  # ok, error, pending
    backend: str | None = "openai"
    model: str | None = "m1"
    latency: float = 1.0
    tokens_in: int = 0
    tokens_out: int = 0
    transcription: str | None = None
    question: str | None = None
    answer: str | None = None
    error: str | None = None


# Latencies chosen for a hand computation (linear interpolation between closest ranks):
#   openai/m1 ok: 1, 2, 3, 4, 10      -> p50 = 3,  p95 = 4 + 0.8 * 6 = 8.8
#   ollama/m2 ok: 5, 7 (error: 0.5)   -> p50 = 6,  p95 = 5 + 0.95 * 2 = 6.9
#   all ok: 1, 2, 3, 4, 5, 7, 10      -> p50 = 4,  p95 = 7 + 0.7 * 3 = 9.1
SPECS = [
    Spec(
        PLANTS,
        "ok",
        latency=1.0,
        tokens_in=100,
        tokens_out=10,
        transcription="How do plants make food from sunlight?",
        question="ignored when there is a transcription",
        answer="# Photosynthesis\n\nPlants turn light into sugar with **chlorophyll**.\n\n```\n# not a heading\n```",
    ),
    Spec(
        PLANTS,
        "ok",
        latency=2.0,
        tokens_in=200,
        tokens_out=20,
        question="And what does the xylem carry?",
        answer="Water and minerals, like the bars of a xylophone carry notes.",
    ),
    Spec(PLANTS, "error", backend="ollama", model="m2", latency=0.5, tokens_in=50, error="The AI did not answer."),
    Spec(PLANTS, "ok", backend="ollama", model="m2", latency=5.0, tokens_in=500, tokens_out=50, answer="Roots."),
    Spec(
        NOTES, "ok", latency=3.0, tokens_in=300, tokens_out=30, transcription="Why is the sky blue?", answer="Rayleigh"
    ),
    Spec(NOTES, "ok", latency=4.0, tokens_in=400, tokens_out=40, transcription="And sunsets?", answer="Longer path"),
    Spec(NOTES, "ok", latency=10.0, tokens_in=1000, tokens_out=100, transcription="Thanks", answer="You're welcome"),
    Spec(NOTES, "ok", backend="ollama", model="m2", latency=7.0, tokens_in=700, tokens_out=70, answer="Seven"),
    Spec(EMPTY_TITLE, "pending"),
]


def build(database: Path, specs: list[Spec] = SPECS) -> None:
    seen: set[str] = set()
    with Store.open(database) as store:
        for n, spec in enumerate(specs):
            name = f"page-{n}.pdf"
            job_id = store.enqueue(Path("/inbox") / name, root=Path("/inbox"), sha256=f"{n:064x}", size=1, mtime_ns=1)
            assert job_id is not None
            job = store.claim_job(only=[job_id])
            assert job is not None
            exchange = store.reserve_exchange(
                job,
                conversation_id=spec.conversation,
                new_conversation=spec.conversation not in seen,
                input_type="pdf",
            )
            seen.add(spec.conversation)
            if spec.status == "pending":
                continue
            prefix = "RESPONSE_" if spec.status == "ok" else "ERROR_"
            store.complete_exchange(
                exchange,
                ExchangeResult(
                    status="ok" if spec.status == "ok" else "error",
                    output_file=Path(f"/inbox/{prefix}{spec.conversation}_ex{exchange.sequence_number:03d}.pdf"),
                    transcription=spec.transcription,
                    question_text=spec.question,
                    response_text=spec.answer,
                    error_text=spec.error,
                    backend=spec.backend,
                    model=spec.model,
                    input_tokens=spec.tokens_in,
                    output_tokens=spec.tokens_out,
                    processing_time=spec.latency,
                ),
            )


@dataclass(frozen=True)
class Setup:
    home: Path
    config: Path
    database: Path

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eink_llm", "conversations", *args, "-c", str(self.config)],
            cwd=cwd or self.home,
            env=clean_env(self.home),
            capture_output=True,
            text=True,
            timeout=60,
        )


def make_setup(home: Path, *, with_database: bool = True) -> Setup:
    database = home / "state" / "history.sqlite3"
    config = home / "config.yaml"
    config.write_text(
        f"storage:\n  database: {database}\noutput:\n  device: a5\nlogging:\n  format: json\n  level: warning\n"
    )
    if with_database:
        database.parent.mkdir(parents=True)
        build(database)
    return Setup(home, config, database)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """A database the read-only tests share (they must not change it)."""
    return make_setup(tmp_path_factory.mktemp("history"))


@pytest.fixture()
def own(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def stored(setup: Setup, conversation_id: str) -> tuple[Conversation, list[Exchange]]:
    with Store.open(setup.database, readonly=True) as store:
        conversation = store.get_conversation(conversation_id)
        assert conversation is not None
        return conversation, store.conversation_exchanges(conversation_id)


# --- list ---------------------------------------------------------------------------------------------------


def test_list_shows_newest_first_with_titles(shared: Setup) -> None:
    result = shared.run("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["conversation", "status", "exchanges", "last", "activity", "title"]
    assert [line.split()[0] for line in lines[1:4]] == [EMPTY_TITLE, NOTES, PLANTS]
    plants = next(line for line in lines if line.startswith(PLANTS))
    assert "active" in plants and " 4 " in plants and "How do plants make food from sunlight?" in plants
    assert "page-8.pdf" in next(line for line in lines if line.startswith(EMPTY_TITLE))  # no text: the file name


def test_list_json_shape_and_limit(shared: Setup) -> None:
    result = shared.run("list", "--json", "--limit", "2")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert [item["conversation_id"] for item in items] == [EMPTY_TITLE, NOTES]
    assert set(items[0]) == {"conversation_id", "status", "exchanges", "created_at", "last_activity", "title"}
    notes = items[1]
    assert notes["status"] == "active" and notes["exchanges"] == 4 and notes["title"] == "Why is the sky blue?"
    assert notes["last_activity"] >= notes["created_at"]


def test_title_is_one_line_and_truncated() -> None:
    long = "What is\n\n  the meaning " + "of everything " * 20
    title = history_format.title_of(long, None, "x.pdf")
    assert "\n" not in title and len(title) == history_format.TITLE_CHARS and title.endswith("…")
    assert history_format.title_of("  ", "typed text", "x.pdf") == "typed text"
    assert history_format.title_of(None, None, "x.pdf") == "x.pdf"


# --- show ---------------------------------------------------------------------------------------------------


def test_show_prints_every_exchange_in_order(shared: Setup) -> None:
    result = shared.run("show", PLANTS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{PLANTS} (active): 4 exchanges")
    positions = [out.index(f"\n#{n}  ") for n in range(1, 5)]
    assert positions == sorted(positions)
    first = out[positions[0] : positions[1]]
    assert "ok  openai/m1  110 tokens (100 in, 10 out)  1.0 s" in first
    assert "input:  page-0.pdf" in first and f"output: RESPONSE_{PLANTS}_ex001.pdf" in first
    assert "You asked:\n    How do plants make food from sunlight?" in first
    assert "ignored when there is a transcription" not in first
    assert "Plants turn light into sugar" in first
    second = out[positions[1] : positions[2]]
    assert "And what does the xylem carry?" in second  # no transcription: the page's text
    third = out[positions[2] : positions[3]]
    assert "error  ollama/m2" in third and "Error:\n    The AI did not answer." in third


def test_show_an_exchange_still_in_progress(shared: Setup) -> None:
    result = shared.run("show", EMPTY_TITLE)
    assert result.returncode == 0, result.stderr
    assert "#1" in result.stdout and "pending" in result.stdout and "(not answered yet)" in result.stdout


def test_unknown_id_is_a_clear_error(shared: Setup) -> None:
    for args in (["show", "conv_nope"], ["export", "conv_nope", "--format", "json"], ["archive", "conv_nope"]):
        result = shared.run(*args)
        assert result.returncode == EX_NOINPUT, (args, result.stdout, result.stderr)
        assert "There is no conversation 'conv_nope'" in result.stderr
        assert "conversations list" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""


# --- export -------------------------------------------------------------------------------------------------


def test_export_markdown_has_every_exchange(shared: Setup) -> None:
    result = shared.run("export", PLANTS)  # md is the default, to stdout
    assert result.returncode == 0, result.stderr
    md = result.stdout
    assert md.startswith("# How do plants make food from sunlight?\n")
    assert [line for line in md.splitlines() if line.startswith("## ")] == [f"## Exchange {n}" for n in range(1, 5)]
    assert "> How do plants make food from sunlight?" in md and "> And what does the xylem carry?" in md
    assert "### Photosynthesis" in md  # the answer's heading sits below the exchange's
    assert "```\n# not a heading\n```" in md  # ... but code is left alone
    assert "**No answer:** The AI did not answer." in md and "Roots." in md
    assert f"`page-0.pdf` → `RESPONSE_{PLANTS}_ex001.pdf`" in md


def test_export_json_round_trips(shared: Setup, tmp_path: Path) -> None:
    out = tmp_path / "plants.json"
    result = shared.run("export", PLANTS, "--format", "json", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    data = json.loads(out.read_text())
    conversation, exchanges = stored(shared, PLANTS)
    assert data["format"] == "eink-llm conversation" and data["version"] == history_format.EXPORT_VERSION
    assert data["title"] == "How do plants make food from sunlight?"
    assert Conversation(**data["conversation"]) == conversation
    assert [Exchange(**item) for item in data["exchanges"]] == exchanges
    assert len(exchanges) == 4
    stdout = shared.run("export", PLANTS, "--format", "json")
    assert json.loads(stdout.stdout) == data


def test_export_pdf_has_one_bookmark_per_exchange(shared: Setup, tmp_path: Path) -> None:
    result = shared.run("export", PLANTS, "--format", "pdf", cwd=tmp_path)  # no -o: ./<id>.pdf
    assert result.returncode == 0, result.stderr
    pdf = tmp_path / f"{PLANTS}.pdf"
    assert pdf.exists() and f"{PLANTS}.pdf: 4 exchanges" in result.stdout
    document = pdfium.PdfDocument(pdf)
    try:
        top = [item.get_title() for item in document.get_toc() if item.level == 0]
        text = "\n".join(page.get_textpage().get_text_range() for page in document)
        width_mm = document[0].get_width() / 72 * 25.4
    finally:
        document.close()
    assert len(top) == 4 and all(title.startswith(f"Exchange {n}") for n, title in enumerate(top, start=1))
    assert "How do plants make food from sunlight?" in text and "xylophone" in text
    assert "The AI did not answer." in text
    assert abs(width_mm - 148) < 1  # the config's device (a5)
    named = tmp_path / "sub" / "conversation.pdf"
    named.parent.mkdir()
    again = shared.run("export", PLANTS, "--format", "pdf", "-o", str(named))
    assert again.returncode == 0, again.stderr
    assert named.read_bytes()[:5] == b"%PDF-"


# --- search -------------------------------------------------------------------------------------------------


def test_search_finds_a_word_of_one_exchange_with_a_snippet(shared: Setup) -> None:
    result = shared.run("search", "xylophone", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["matched"] == "all" and len(data["hits"]) == 1
    hit = data["hits"][0]
    assert (hit["conversation_id"], hit["sequence_number"]) == (PLANTS, 2)
    assert "[xylophone]" in hit["snippet"] and hit["created_at"].endswith("Z")
    text = shared.run("search", "xylophone")
    assert text.returncode == 0 and PLANTS in text.stdout and "#2" in text.stdout and "[xylophone]" in text.stdout


def test_search_wants_every_word_then_falls_back_to_any(shared: Setup) -> None:
    every = json.loads(shared.run("search", "plants sunlight", "--json").stdout)
    assert every["matched"] == "all" and [h["sequence_number"] for h in every["hits"]] == [1]
    result = shared.run("search", "sunlight rayleigh")  # no exchange has both
    assert result.returncode == 0, result.stderr
    assert "No exchange has every word" in result.stdout
    assert PLANTS in result.stdout and NOTES in result.stdout


def test_search_in_one_conversation(shared: Setup) -> None:
    data = json.loads(shared.run("search", "sunlight rayleigh", "--conversation", NOTES, "--json").stdout)
    assert {h["conversation_id"] for h in data["hits"]} == {NOTES}
    assert shared.run("search", "x", "--conversation", "conv_nope").returncode == EX_NOINPUT


def test_search_nothing_found(shared: Setup) -> None:
    result = shared.run("search", "zzzunknownword")
    assert result.returncode == 0 and "No answered exchange contains any of the words" in result.stdout


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"xylophone',
        "xylo*",
        "*",
        "AND",
        "xylophone AND",
        "NEAR(",
        "NEAR(a b",
        "a OR b",
        "col:xylophone",
        "^start",
        "-minus",
        "(((",
        "'; DROP TABLE exchanges; --",
        "\u00e9t\u00e9 \u2014 \U0001f600",
    ],
)
def test_fts_syntax_in_a_query_is_just_words(shared: Setup, query: str) -> None:
    try:
        out = history.search_history(shared.database, query, conversation_id=None, limit=5, as_json=True)
    except HistoryArgumentError as exc:  # nothing but punctuation: told so
        assert "nothing to search for" in exc.what
        return
    data = json.loads(out.text)
    assert data["matched"] in ("all", "any")
    if query in ('"xylophone', "col:xylophone", "xylophone AND"):
        assert data["hits"], query  # the word is still found


def test_punctuation_only_search_via_the_cli(shared: Setup) -> None:
    result = shared.run("search", 'NEAR( * "')
    assert result.returncode in (0, EX_USAGE), result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr


# --- archive ------------------------------------------------------------------------------------------------


def test_archive_hides_from_the_list_and_is_idempotent(own: Setup) -> None:
    result = own.run("archive", NOTES)
    assert result.returncode == 0, result.stderr
    assert "archived" in result.stdout
    with Store.open(own.database, readonly=True) as store:
        conversation = store.get_conversation(NOTES)
        assert conversation is not None and conversation.status == "archived"
    listed = own.run("list")
    assert NOTES not in listed.stdout and PLANTS in listed.stdout
    assert "1 archived not shown (--all shows them)" in listed.stdout
    every = json.loads(own.run("list", "--all", "--json").stdout)
    assert {item["conversation_id"]: item["status"] for item in every}[NOTES] == "archived"
    again = own.run("archive", NOTES)
    assert again.returncode == 0 and "already archived" in again.stdout
    assert own.run("show", NOTES).returncode == 0  # still readable


# --- stats --------------------------------------------------------------------------------------------------


def test_stats_match_a_hand_computation(shared: Setup) -> None:
    result = shared.run("stats", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    models = {(m["backend"], m["model"]): m for m in data["models"]}
    assert set(models) == {("openai", "m1"), ("ollama", "m2")}
    m1, m2, total = models["openai", "m1"], models["ollama", "m2"], data["total"]
    assert (m1["exchanges"], m1["ok"], m1["errors"]) == (5, 5, 0)
    assert (m1["input_tokens"], m1["output_tokens"]) == (100 + 200 + 300 + 400 + 1000, 10 + 20 + 30 + 40 + 100)
    assert (m1["latency_p50"], m1["latency_p95"]) == pytest.approx((3.0, 8.8))
    assert (m2["exchanges"], m2["ok"], m2["errors"]) == (3, 2, 1)  # the error's 0.5 s is not a latency
    assert (m2["input_tokens"], m2["output_tokens"]) == (50 + 500 + 700, 50 + 70)
    assert (m2["latency_p50"], m2["latency_p95"]) == pytest.approx((6.0, 6.9))
    assert (total["exchanges"], total["ok"], total["errors"]) == (8, 7, 1)  # the pending one is not counted
    assert total["input_tokens"] == m1["input_tokens"] + m2["input_tokens"]
    assert (total["latency_p50"], total["latency_p95"]) == pytest.approx((4.0, 9.1))
    text = shared.run("stats")
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.startswith("openai"))
    assert row.split() == ["openai", "m1", "5", "5", "0", "2,000", "200", "3.00", "s", "8.80", "s"]
    assert next(line for line in text.stdout.splitlines() if line.startswith("total")).split()[1] == "8"


def test_stats_since(shared: Setup) -> None:
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d")
    later = json.loads(shared.run("stats", "--json", "--since", tomorrow).stdout)
    assert later["models"] == [] and later["total"]["exchanges"] == 0 and later["total"]["latency_p50"] is None
    recent = json.loads(shared.run("stats", "--json", "--since", "1d").stdout)
    assert recent["total"]["exchanges"] == 8
    bad = shared.run("stats", "--since", "last tuesday")
    assert bad.returncode == EX_USAGE and "is not a date" in bad.stderr


def test_parse_since() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert history.parse_since("7d", now) == now - timedelta(days=7)
    assert history.parse_since("12h", now) == now - timedelta(hours=12)
    assert history.parse_since("2w", now) == now - timedelta(weeks=2)
    assert history.parse_since("2026-03-01T08:00+00:00") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    local = history.parse_since("2026-03-01")
    assert local.tzinfo is not None and local.replace(tzinfo=None) == datetime(2026, 3, 1)
    with pytest.raises(history.HistoryArgumentError):
        history.parse_since("yesterday")


def test_percentiles_of_one_and_of_no_latency(tmp_path: Path) -> None:
    database = tmp_path / "one.sqlite3"
    build(database, [Spec("conv_x", "ok", latency=2.5), Spec("conv_x", "error", backend=None, model=None)])
    with Store.open(database, readonly=True) as store:
        per_model, total = store.usage()
    by_key = {(u.backend, u.model): u for u in per_model}
    assert by_key["openai", "m1"].latency == {0.5: 2.5, 0.95: 2.5}
    assert by_key[None, None].latency == {} and by_key[None, None].errors == 1
    assert total.exchanges == 2 and total.latency == {0.5: 2.5, 0.95: 2.5}


# --- no database ------------------------------------------------------------------------------------------


def test_no_database_means_no_history_yet(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, with_database=False)
    listed = setup.run("list")
    assert listed.returncode == 0 and "No history yet" in listed.stdout and str(setup.database) in listed.stdout
    as_json = setup.run("list", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == [] and "No history yet" in as_json.stderr
    for args in (["stats"], ["search", "anything"]):
        result = setup.run(*args)
        assert result.returncode == 0 and "No history yet" in result.stdout, args
    for args in (["show", PLANTS], ["archive", PLANTS], ["export", PLANTS, "--format", "pdf"]):
        result = setup.run(*args)
        assert result.returncode == EX_NOINPUT and "No history yet" in result.stderr, args
        assert "Traceback" not in result.stderr
    assert not setup.database.exists()  # nothing created, not even by archive
    assert not (tmp_path / f"{PLANTS}.pdf").exists()


def test_markdown_headings_are_demoted_outside_code() -> None:
    md = "# One\n## Two\n###### Six\n```\n# code\n```\n~~~\n## code\n~~~\n#hashtag"
    expected = "### One\n#### Two\n###### Six\n```\n# code\n```\n~~~\n## code\n~~~\n#hashtag"
    assert history_format.demote_headings(md) == expected


def test_a_database_from_an_older_version_is_a_clear_error(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, with_database=False)
    setup.database.parent.mkdir(parents=True)
    db = sqlite3.connect(setup.database)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for statement in statements(MIGRATIONS[0][1]):
        db.execute(statement)
    db.execute("INSERT INTO schema_migrations VALUES (1, ?, '2026-01-01T00:00:00.000Z')", (MIGRATIONS[0][0],))
    db.commit()
    db.close()
    result = setup.run("list")
    assert result.returncode == EX_IOERR and "older version" in result.stderr and "eink-llm run" in result.stderr
    assert "Traceback" not in result.stderr
