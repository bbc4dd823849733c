"""The ``eink-llm`` command. The only place that reads argv, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from eink_llm import __version__, redact
from eink_llm.config import LoadedConfig, load_config, masked_dump
from eink_llm.errors import EX_INTERRUPTED, EX_SOFTWARE, EX_USAGE, EinkError
from eink_llm.logsetup import configure_logging

if TYPE_CHECKING:
    from eink_llm.service import ProcessResult

EXIT_NOT_ALL_ANSWERED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eink-llm",
        description="Answer handwritten questions from an e-ink tablet's synced folder with an LLM.",
    )
    parser.add_argument("--version", action="version", version=f"eink-llm {__version__}")
    config_help = (
        "config file (default: $EINK_LLM_CONFIG, ~/.config/eink-llm/config.yaml, /etc/eink-llm/config.yaml, "
        "else built-in defaults)"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, metavar="PATH", help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", parents=[common], help="watch the folders and answer until stopped")
    process = commands.add_parser("process", parents=[common], help="answer the given files once, without watching")
    process.add_argument("files", nargs="+", type=Path, metavar="FILE")
    retry = commands.add_parser(
        "retry",
        parents=[common],
        help="try failed pages again: the given pages (or their ERROR_ files), or --failed ones",
        description="Try failed pages again. The exchange keeps its number; the answer replaces the ERROR_ page "
        "(while that is unchanged). A re-export of the same file, or ink on the ERROR_ page, does the same.",
    )
    retry.add_argument("files", nargs="*", type=Path, metavar="FILE", help="a page, or its ERROR_ file")
    retry.add_argument("--failed", action="store_true", help="every page whose ERROR_ was not the page's own fault")
    retry.add_argument("--since", metavar="WHEN", help="with --failed: only failures since (YYYY-MM-DD, 1d, 12h)")
    commands.add_parser("check-config", parents=[common], help="validate the config and print it with secrets masked")
    render = commands.add_parser("render", help="preview: render a Markdown answer as the tablet will show it")
    render.add_argument("answer", type=Path, metavar="ANSWER.md")
    render.add_argument("--device", default="remarkable2", help="device profile name, or WxH in mm (remarkable2)")
    render.add_argument("-o", "--output", type=Path, metavar="OUT.pdf", help="where to write (ANSWER.pdf)")
    render.add_argument("--font-size", type=float, default=11.0, metavar="PT", help="body text size (11)")
    render.add_argument("--question", metavar="TEXT", help="show TEXT in a 'You asked' box at the top")
    status = commands.add_parser(
        "status",
        parents=[common],
        help="whether the daemon runs, what it answers and what waits, the AI service, budgets, the last answers "
        "and failures (what the STATUS page shows; safe while running)",
    )
    status.add_argument("-n", "--limit", type=int, default=10, metavar="N", help="how many rows of each (10)")
    _add_conversations(commands, common)
    return parser


def _add_conversations(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``eink-llm conversations …``: the history (docs/history.md). Read-only, except ``archive``."""
    group = commands.add_parser(
        "conversations",
        help="list, show, export, search and archive past conversations; usage stats",
        description="The history of exchanges in the database (read-only and safe while the daemon runs, "
        "except archive).",
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="conversations, most recent activity first")
    listing.add_argument("--all", action="store_true", help="include archived conversations")
    listing.add_argument("-n", "--limit", type=int, default=50, metavar="N", help="how many (50; 0: all)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", parents=[common], help="every exchange of a conversation, in order")
    show.add_argument("conversation", metavar="ID")
    export = actions.add_parser("export", parents=[common], help="a conversation as Markdown, JSON or an e-ink PDF")
    export.add_argument("conversation", metavar="ID")
    export.add_argument("--format", choices=("md", "json", "pdf"), default="md", help="md (default), json or pdf")
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to write (md/json: stdout; pdf: ./ID.pdf)"
    )
    search = actions.add_parser("search", parents=[common], help="full-text search of questions and answers")
    search.add_argument("query", nargs="+", metavar="WORD", help="every word must match (else any, said so)")
    search.add_argument("--conversation", metavar="ID", help="only in this conversation")
    search.add_argument("-n", "--limit", type=int, default=20, metavar="N", help="how many results (20)")
    search.add_argument("--json", action="store_true", help="print JSON")
    archive = actions.add_parser("archive", parents=[common], help="archive a conversation (it is not continued)")
    archive.add_argument("conversation", metavar="ID")
    stats = actions.add_parser("stats", parents=[common], help="exchanges, tokens and latency per backend and model")
    stats.add_argument("--since", metavar="DATE", help="only exchanges since DATE (YYYY-MM-DD, ISO time, 7d, 12h)")
    stats.add_argument("--json", action="store_true", help="print JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":  # needs no config
            configure_logging("console", "warning")  # a preview for a person: readable lines, never JSON
            return _render(args.answer, args.device, args.output, args.font_size, args.question)
        loaded = load_config(args.config)
        logging_config = loaded.config.logging
        configure_logging(logging_config.format, logging_config.level)
        if args.command == "check-config":
            return _check_config(loaded)
        if args.command == "run":
            from eink_llm.service import Daemon

            return Daemon(loaded).run()
        if args.command == "process":
            return _process(loaded, args.files)
        if args.command == "retry":
            return _retry(loaded, args.files, failed=args.failed, since=args.since)
        if args.command == "status":
            return _status(loaded, args.limit)
        if args.command == "conversations":
            return _conversations(loaded, args)
        return EX_USAGE  # pragma: no cover - argparse rejects unknown commands
    except EinkError as exc:
        print(redact.text(f"eink-llm: {exc.what}"), file=sys.stderr)
        if exc.todo:
            print(redact.text(f"  What to do: {exc.todo}"), file=sys.stderr)
        if exc.detail:
            print(redact.text(f"  Detail: {exc.detail}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EX_INTERRUPTED
    except Exception as exc:  # a bug: say so plainly, with the type, and keep the traceback in the log
        import logging

        logging.getLogger("eink_llm").exception("unexpected error")
        print(redact.text(f"eink-llm: unexpected error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return EX_SOFTWARE


def _check_config(loaded: LoadedConfig) -> int:
    """The same start-up checks as ``run`` (same problems, same exit code), without creating anything."""
    from eink_llm import startup

    report = startup.require(loaded)
    source = str(loaded.source) if loaded.source else "built-in defaults (no config file found)"
    print(f"# eink-llm configuration from {source}; valid.")
    print(f"# database: {loaded.database_path}")
    for note in report.notes:
        print(f"# note: {note}")
    print(yaml.safe_dump(masked_dump(loaded.config), sort_keys=False, allow_unicode=True), end="")
    return 0


def _process(loaded: LoadedConfig, files: Sequence[Path]) -> int:
    from eink_llm.oneshot import process_files

    return _report(process_files(loaded, files))


def _retry(loaded: LoadedConfig, files: Sequence[Path], *, failed: bool, since: str | None) -> int:
    from eink_llm.history import parse_since
    from eink_llm.oneshot import retry_failed, retry_files

    if failed == bool(files) or (since and not failed):
        print("eink-llm retry: give either FILE… or --failed [--since WHEN]", file=sys.stderr)
        return EX_USAGE
    if not failed:
        return _report(retry_files(loaded, files))
    results = retry_failed(loaded, parse_since(since) if since else None)
    if not results:
        print("No failed pages to retry.")
        return 0
    return _report(results)


def _report(results: Sequence[ProcessResult]) -> int:
    for result in results:
        mark = "answered" if result.answered else "NOT answered"
        print(redact.text(f"{result.path}: {mark}: {result.message}"))
    return 0 if results and all(r.answered for r in results) else EXIT_NOT_ALL_ANSWERED


def _status(loaded: LoadedConfig, limit: int) -> int:
    from eink_llm.statusinfo import snapshot_text, take_snapshot
    from eink_llm.store import Store

    path = loaded.database_path
    if not path.exists():
        print(f"No database yet at {path}: nothing has been queued, and no daemon has run on it.")
        return 0
    # Read as it is: a database an older daemon still uses shows what it has (no heartbeat, nothing kept to
    # write); a damaged or unreadable one is a StoreError, exit 74.
    with Store.open(path, readonly=True) as store:
        # The same snapshot the STATUS page in each watched folder shows, here for every folder.
        print(snapshot_text(take_snapshot(store, loaded.config, recent=limit), path), end="")
        counts = store.queue_counts()
        print("\nQueue: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        unwritten = store.unwritten_outputs(limit)
        if unwritten:
            print("\nWaiting to write (answered and kept; written as soon as the folder can be written):")
            for item in unwritten:
                print(
                    f"  {item.path}: tried {item.attempts} times, next at {item.next_attempt_at}: "
                    f"{redact.optional(item.last_error)}"
                )
        failures = store.failures(limit)
        if failures:
            print("\nFailures:")
            for job in failures:
                waiting = " (will retry)" if job.state == "pending" else ""
                print(f"  {job.path}{waiting}: {redact.optional(job.last_error)}")  # also texts stored before masking
        repeats = store.not_answered_again(limit)
        if repeats:
            print("\nNot answered again (same content, same conversation):")
            for job in repeats:
                print(f"  {job.path}: {redact.optional(job.last_error)}")
    return 0


def _conversations(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from eink_llm import history

    database = loaded.database_path
    if args.action == "list":
        out = history.list_conversations(database, include_archived=args.all, limit=args.limit, as_json=args.json)
    elif args.action == "show":
        out = history.show_conversation(database, args.conversation)
    elif args.action == "export":
        output = loaded.config.profile("default").output
        out = history.export_conversation(
            database, args.conversation, args.format, args.output, device=output.device, font_size=output.font_size
        )
    elif args.action == "search":
        out = history.search_history(
            database, " ".join(args.query), conversation_id=args.conversation, limit=args.limit, as_json=args.json
        )
    elif args.action == "archive":
        out = history.archive_conversation(database, args.conversation)
    else:
        out = history.usage_stats(database, since=args.since, as_json=args.json)
    if out.note:
        print(out.note, file=sys.stderr)
    try:
        sys.stdout.write(out.text)
        sys.stdout.flush()
    except BrokenPipeError:  # `… | head` stopped reading: not an error; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _render(answer: Path, device: str, output: Path | None, font_size: float, question: str | None) -> int:
    from eink_llm.render import render_markdown_file

    out = output or answer.with_suffix(".pdf")
    result = render_markdown_file(answer, device, out, font_size, transcription=question)
    notes = [f"{len(result.pdf) / 1024:.0f} KiB"]
    if result.stats.formulas:
        notes.append(f"{result.stats.formulas} formulas ({len(result.stats.formulas_as_source)} shown as TeX source)")
    if result.stats.drawings or result.stats.drawings_as_source:
        notes.append(f"{result.stats.drawings} drawings")
        notes.extend(f"drawing shown as source: {reason}" for reason in result.stats.drawings_as_source)
    if result.missing_chars:
        notes.append("no font for: " + " ".join(result.missing_chars))
    print(f"{out}: " + ", ".join(notes))
    return 0
