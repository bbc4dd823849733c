"""How fast the history commands are on a large history: 10,000 exchanges, each command as a whole process.

Not a test: run it by hand when changing the history commands or the store, and compare the figures with
docs/history.md.

    python benchmarks/history.py [--conversations 500] [--exchanges 20] [--runs 5] [--keep DIR] [--reuse DB]
                                 [--no-bytecode-cache]

The database is built through the real ``Store`` API (migrations, the queue, reserve/complete), so it holds
what the daemon would write: 500 conversations × 20 exchanges by default, answers of 150–450 words drawn from
a Zipf-distributed vocabulary of ~8,000 words (so full-text search has real work), a mix of backends and
models, ~4 % errors. Each command then runs as ``python -m eink_llm …`` once to warm up and ``--runs`` times
timed; the table shows the minimum and the median wall time. ``archive`` archives on the warm-up run, so the
timed runs are its idempotent path. ``--reuse DB`` times a copy of an existing database instead of building one.

Bytecode: the children write and reuse ``.pyc`` files (in a temporary ``PYTHONPYCACHEPREFIX``), as a package
installed by pip has them. ``--no-bytecode-cache`` keeps ``$PYTHONDONTWRITEBYTECODE`` if it is set, which in a
source checkout means compiling eink_llm's modules on every run (~0.3–0.5 s more per command).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eink_llm.store import ExchangeResult, Store


def _words(text: str) -> list[str]:
    return text.split()


COMMON = _words(
    "the of and to in is that for it as with was on be by this are or from at which but not have an they you we"
    " can more one all their there been has if when will would so what about into than some could them other"
    " time these two may then first any like only its over also after use how our well way even because most"
)
TOPICS = _words(
    "photosynthesis chlorophyll thylakoid membrane electron proton enzyme glucose carbon dioxide oxygen leaf"
    " derivative integral limit continuity theorem polynomial matrix eigenvalue vector tensor manifold topology"
    " revolution monarchy parliament treaty empire dynasty colony republic constitution tariff migration"
    " sonnet metaphor stanza narrator allegory tragedy irony rhyme protagonist chapter manuscript translation"
    " mitochondria ribosome nucleus chromosome mutation protein genome bacteria virus antibody vaccine enzyme"
    " gravity momentum velocity acceleration friction entropy thermodynamics quantum photon relativity orbit"
    " algorithm recursion compiler database index transaction latency bandwidth encryption protocol kernel"
    " volcano glacier erosion sediment tectonic plate earthquake monsoon climate aquifer estuary delta"
)
SYLLABLES = _words("ka ro mi tel van dor sin qua bre lo fen ur pal zed nim os ther ia gon lux")
BACKENDS = (
    ("openai", "gpt-4o-mini", 0.45, 2.5),
    ("anthropic", "claude-3-5-sonnet", 0.30, 4.0),
    ("ollama", "llama3.2-vision", 0.25, 11.0),
)


def vocabulary(rng: random.Random, size: int = 8000) -> list[str]:
    words = dict.fromkeys(COMMON + TOPICS)
    while len(words) < size:
        words.setdefault("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return list(words)


class TextMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = vocabulary(rng)
        total = 0.0
        self.cumulative = []
        for rank in range(len(self.words)):
            total += 1 / (rank + 1)
            self.cumulative.append(total)

    def sentence(self, n: int) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=n)
        return " ".join(words).capitalize() + "."

    def question(self) -> str:
        return " ".join(self.sentence(self.rng.randint(6, 14)) for _ in range(self.rng.randint(1, 2)))

    def answer(self) -> str:
        paragraphs = []
        remaining = self.rng.randint(150, 450)
        while remaining > 0:
            n = min(remaining, self.rng.randint(40, 90))
            paragraphs.append(" ".join(self.sentence(k) for k in _split(n, self.rng)))
            remaining -= n
        heading = " ".join(self.rng.choices(TOPICS, k=2)).title()
        items = "\n".join(f"- {self.sentence(self.rng.randint(4, 9))}" for _ in range(3))
        return f"## {heading}\n\n" + "\n\n".join([*paragraphs[:1], items, *paragraphs[1:]])


def _split(n: int, rng: random.Random) -> list[int]:
    parts = []
    while n > 0:
        k = min(n, rng.randint(8, 20))
        parts.append(k)
        n -= k
    return parts


def build_database(path: Path, conversations: int, per_conversation: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    text = TextMaker(rng)
    with Store.open(path) as store:
        for c in range(conversations):
            conversation_id = f"conv_20260101_{c // 3600:02d}{c // 60 % 60:02d}{c % 60:02d}_{c:08x}"
            for n in range(per_conversation):
                name = f"question-{c:04d}-{n:02d}.pdf"
                digest = hashlib.sha256(name.encode()).hexdigest()
                job_id = store.enqueue(
                    Path("/inbox") / name,
                    root=Path("/inbox"),
                    sha256=digest,
                    size=1,
                    mtime_ns=1,
                    conversation_hint=conversation_id,
                )
                assert job_id is not None
                job = store.claim_job(only=[job_id])
                assert job is not None
                exchange = store.reserve_exchange(
                    job, conversation_id=conversation_id, new_conversation=n == 0, input_type="pdf"
                )
                backend, model, latency = _pick_backend(rng)
                failed = rng.random() < 0.04
                question = text.question()
                tokens_in = rng.randint(800, 3000)
                output = f"RESPONSE_{conversation_id}_ex{n + 1:03d}_{name}"
                result = ExchangeResult(
                    status="error" if failed else "ok",
                    output_file=Path("/inbox") / ("ERROR_" + output[9:] if failed else output),
                    transcription=None if failed else question,
                    question_text=question,
                    response_text=None if failed else text.answer(),
                    error_text="The AI service did not answer in time." if failed else None,
                    backend=backend,
                    model=model,
                    input_tokens=tokens_in,
                    output_tokens=0 if failed else rng.randint(150, 900),
                    processing_time=round(rng.lognormvariate(0, 0.5) * latency, 3),
                )
                store.complete_exchange(exchange, result)


def _pick_backend(rng: random.Random) -> tuple[str, str, float]:
    roll = rng.random()
    for backend, model, share, latency in BACKENDS:
        if roll < share:
            return backend, model, latency
        roll -= share
    backend, model, _, latency = BACKENDS[-1]
    return backend, model, latency


def commands(conversation_id: str, out: Path) -> list[tuple[str, list[str]]]:
    return [
        ("list", ["conversations", "list"]),
        ("list --json --all", ["conversations", "list", "--json", "--all"]),
        ("show", ["conversations", "show", conversation_id]),
        ("export md", ["conversations", "export", conversation_id, "--format", "md"]),
        ("export json", ["conversations", "export", conversation_id, "--format", "json"]),
        ("export pdf", ["conversations", "export", conversation_id, "--format", "pdf", "-o", str(out)]),
        ("search (rare word)", ["conversations", "search", "eigenvalue thylakoid"]),
        ("search (common word)", ["conversations", "search", "time"]),
        ("search (no match → any)", ["conversations", "search", "photosynthesis zzzqqq"]),
        ("stats", ["conversations", "stats"]),
        ("stats --json", ["conversations", "stats", "--json"]),
        ("archive", ["conversations", "archive", conversation_id]),
    ]


def time_command(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, int]:
    """Min and median wall time of ``runs`` runs, after one untimed warm-up run."""
    times = []
    code = 0
    for n in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "eink_llm", *argv], capture_output=True, text=True, env=env)
        if n:
            times.append(time.perf_counter() - start)
        if done.returncode:
            code = done.returncode
            print(f"  {' '.join(argv)} → exit {done.returncode}: {done.stderr.strip()[:300]}", file=sys.stderr)
    return min(times), statistics.median(times), code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--exchanges", type=int, default=20, help="per conversation")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the database in this folder and keep it")
    parser.add_argument("--reuse", type=Path, metavar="DB", help="time a copy of this existing database")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep $PYTHONDONTWRITEBYTECODE: every run compiles the modules that have no .pyc (a source checkout)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        database = folder / "history.sqlite3"
        if database.exists():
            database.unlink()
        if args.reuse is not None:  # a copy (SQLite's backup API, safe while a daemon writes): archive writes
            source = sqlite3.connect(f"{args.reuse.resolve().as_uri()}?mode=ro", uri=True)
            copy = sqlite3.connect(database)
            try:
                source.backup(copy)
            finally:
                source.close()
                copy.close()
        else:
            start = time.perf_counter()
            build_database(database, args.conversations, args.exchanges)
            print(f"built {args.conversations * args.exchanges} exchanges in {time.perf_counter() - start:.1f} s")
        config = folder / "config.yaml"
        config.write_text(f"storage:\n  database: {database}\nlogging:\n  format: json\n  level: warning\n")
        with Store.open(database, readonly=True) as store:
            newest = store.conversation_listings(limit=1)[0].conversation_id
            count = store.usage()[1].exchanges
        print(f"database: {database} ({database.stat().st_size / 2**20:.1f} MiB, {count} exchanges)")
        env = dict(os.environ)
        if not args.no_bytecode_cache:  # as installed by pip, which compiles the .pyc files at install time
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        baseline = time_command(["--version"], args.runs, env)
        print(f"\n{'command':<26} {'min':>7} {'median':>7}")
        print(f"{'(eink-llm --version)':<26} {baseline[0]:>6.2f}s {baseline[1]:>6.2f}s")
        failed = False
        for label, argv in commands(newest, folder / "conversation.pdf"):
            low, median, code = time_command([*argv, "-c", str(config)], args.runs, env)
            mark = "" if median < 1 else "  (over 1 s)"
            failed |= bool(code)
            print(f"{label:<26} {low:>6.2f}s {median:>6.2f}s{mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
