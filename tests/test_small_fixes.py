"""Issue 13, point 9: the small things a new user tripped over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eink_llm.store import ExchangeResult, Store
from tests.harness import clean_env

ROOT = Path(__file__).resolve().parent.parent


def eink(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eink_llm", *args],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_render_device_message_is_about_the_flag_and_suggests_a_name(tmp_path: Path) -> None:
    answer = tmp_path / "a.md"
    answer.write_text("Hello\n")
    result = eink("render", str(answer), "--device", "remarkable3", home=tmp_path)
    assert result.returncode != 0
    assert "output.device in the configuration" not in result.stderr
    assert "Did you mean 'remarkable2'?" in result.stderr and "120x170" in result.stderr


def test_render_warnings_are_readable_lines_not_json_when_piped(tmp_path: Path) -> None:
    answer = tmp_path / "a.md"
    answer.write_text("A private-use character no font has: \U000f0000\n")
    result = eink("render", str(answer), "-o", str(tmp_path / "a.pdf"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "characters_without_font" in result.stderr
    assert not any(line.lstrip().startswith("{") for line in result.stderr.splitlines()), result.stderr


def test_example_lists_every_device_and_custom_sizes() -> None:
    from eink_llm.render.devices import DEVICES

    example = (ROOT / "config.example.yaml").read_text()
    device_comment = example[example.index("output:") : example.index("device: remarkable2")]
    for name in DEVICES:
        assert name in device_comment, name
    assert "width_mm" in device_comment and "120x170" in device_comment


def _history(tmp_path: Path) -> Path:
    database = tmp_path / "h.sqlite3"
    with Store.open(database) as store:
        for number, (conversation, status) in enumerate(
            (("conv_20260101_090000_aaaaaaaa", "ok"), ("conv_20260102_090000_bbbbbbbb", "error"))
        ):
            job_id = store.enqueue(
                tmp_path / f"q{number}.pdf", root=tmp_path, sha256=f"{number}" * 64, size=1, mtime_ns=1
            )
            job = store.claim_job(only=[job_id] if job_id else [])
            assert job is not None
            exchange = store.reserve_exchange(
                job, conversation_id=conversation, new_conversation=True, input_type="pdf"
            )
            store.complete_exchange(
                exchange, ExchangeResult(status=status, output_file=None, transcription=f"question {number}")
            )
    (tmp_path / "c.yaml").write_text(f"storage: {{database: {database}}}\n")
    return tmp_path / "c.yaml"


def test_conversations_show_accepts_a_unique_prefix(tmp_path: Path) -> None:
    config = _history(tmp_path)
    shown = eink("conversations", "show", "conv_20260101", "-c", str(config), home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("conv_20260101_090000_aaaaaaaa")
    short = eink("conversations", "show", "20260102", "-c", str(config), home=tmp_path)  # conv_ left out
    assert short.returncode == 0 and short.stdout.startswith("conv_20260102_090000_bbbbbbbb"), short.stderr
    both = eink("conversations", "show", "conv_2026", "-c", str(config), home=tmp_path)
    assert both.returncode == 64 and "several conversation ids" in both.stderr


def test_a_conversation_whose_only_exchange_failed_is_not_listed_as_active(tmp_path: Path) -> None:
    config = _history(tmp_path)
    listed = eink("conversations", "list", "-c", str(config), home=tmp_path)
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:] if line.startswith("conv_")}
    assert rows == {"conv_20260101_090000_aaaaaaaa": "active", "conv_20260102_090000_bbbbbbbb": "failed"}


def test_quick_start_mentions_the_math_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") : readme.index("## Point it at a real model")]
    assert "[math]" in quick


def test_stats_show_echo_in_one_row(tmp_path: Path) -> None:
    database = tmp_path / "h.sqlite3"
    with Store.open(database) as store:
        for number, (status, model) in enumerate((("ok", "echo"), ("ok", "echo"), ("error", None))):
            job_id = store.enqueue(
                tmp_path / f"q{number}.pdf", root=tmp_path, sha256=f"{number}" * 64, size=1, mtime_ns=1
            )
            job = store.claim_job(only=[job_id] if job_id else [])
            assert job is not None
            exchange = store.reserve_exchange(
                job, conversation_id=f"conv_20260101_09000{number}_aaaaaaaa", new_conversation=True, input_type="pdf"
            )
            result = ExchangeResult(status=status, output_file=None, backend="echo", model=model, processing_time=0.1)
            store.complete_exchange(exchange, result)
    (tmp_path / "c.yaml").write_text(f"storage: {{database: {database}}}\n")
    stats = eink("conversations", "stats", "-c", str(tmp_path / "c.yaml"), home=tmp_path)
    assert stats.returncode == 0, stats.stderr
    rows = [line for line in stats.stdout.splitlines() if line.lstrip().startswith("echo")]
    assert len(rows) == 1, stats.stdout
    assert " 3 " in rows[0], stats.stdout


def test_a_single_link_never_takes_a_page_of_its_own() -> None:
    """A page filled to the bottom, then one link: its address goes inline rather than onto a new page."""
    from datetime import UTC, datetime

    import pypdfium2 as pdfium

    from eink_llm.render import RenderMeta, render_answer

    meta = RenderMeta(title="q", conversation_id="conv_x", exchange=1, created_at=datetime.now(UTC), model="m")

    def pages(text: str) -> tuple[int, str]:
        """How many pages, and the text of the last one."""
        document = pdfium.PdfDocument(render_answer(text, meta, device="remarkable2", font_size=11, reply_page=False))
        try:
            return len(document), document[len(document) - 1].get_textpage().get_text_range()
        finally:
            document.close()

    checked = 0
    for words in range(360, 700, 3):  # bodies from well within one page to just about full
        body = "Word " * words
        plain, _ = pages(body + "end.")
        if plain != 1:
            break
        linked, last = pages(body + "end [a link](https://example.com/page).")
        # a second page only when the words themselves need it, never for the link's address alone
        assert linked == 1 or not last.lstrip().startswith(("Links", "[1]")), (words, last)
        assert "https://example.com/page" in last
        checked += 1
    assert checked > 5
    many = "".join(f"See [site {n}](https://example.com/{n}). " for n in range(5))
    assert "Links" in pages(many)[1]  # several links: still the list at the end
