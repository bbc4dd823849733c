"""Profiles route by folder; fallbacks catch permanent failures; budgets cap spending and say when they reset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from eink_llm import startup
from eink_llm.budget import period_starts
from eink_llm.config import load_config
from eink_llm.economy import ink_mask, stroke_width
from eink_llm.errors import ConfigError
from eink_llm.service import process_files
from tests import samples
from tests.fakes import FakeLLMServer, Fault
from tests.harness import db_rows, outputs, pdf_text, write_config

#: The budget tests' clock: the last minute of a day and of a month, where two runs of ``process`` would otherwise
#: count in different periods. Exchanges are recorded at the real time, later than this, so they count in its
#: day and month.
END_OF_JANUARY = datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC)


def end_of_january() -> datetime:
    return END_OF_JANUARY


@pytest.fixture()
def servers() -> Iterator[tuple[FakeLLMServer, FakeLLMServer]]:
    with FakeLLMServer() as main, FakeLLMServer() as local:
        main.answer_fn = lambda body: f"main answers with {body['model']}"
        local.answer_fn = lambda body: "local answers"
        yield main, local


def write_profiles_config(
    tmp_path: Path, main: FakeLLMServer, local: FakeLLMServer, **profiles: dict[str, object]
) -> Path:
    inbox = tmp_path / "inbox"
    (inbox / "math").mkdir(parents=True)
    (inbox / "local").mkdir()
    base = {"backend": "openai", "base_url": main.base_url, "model": "general", "api_key": "k"}
    spec = {
        "tutor": {
            "llm": {"model": "strong", "system_prompt": "You are a patient maths tutor."},
            "output": {"font_size": 13},
        },
        "local": {"llm": {"base_url": local.base_url, "model": "llama"}},
        **profiles,
    }
    config = write_config(tmp_path / "c.yaml", inbox, tmp_path / "db.sqlite3", llm=base, profiles=spec)
    text = config.read_text().replace(
        f"- {inbox}\n", f"- path: {inbox}\n    subfolders: {{math: tutor, local: local}}\n"
    )
    config.write_text(text)
    return inbox


def test_profiles_route_by_subfolder(tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    main, local = servers
    inbox = write_profiles_config(tmp_path, main, local)
    loaded = load_config(tmp_path / "c.yaml")
    files = [
        samples.make_png(inbox / "top.png", (300, 400)),
        samples.make_png(inbox / "math" / "sum.png", (300, 400)),
        samples.make_png(inbox / "local" / "q.png", (300, 400)),
    ]
    results = process_files(loaded, files)
    assert all(r.answered for r in results), [r.message for r in results]
    assert sorted(r.body["model"] for r in main.requests) == ["general", "strong"]
    tutor = next(r for r in main.requests if r.body["model"] == "strong")
    assert tutor.body["messages"][0]["content"].startswith("You are a patient maths tutor.\n\n")
    assert [r.body["model"] for r in local.requests] == ["llama"]
    rows = {r["input_file"]: r["profile"] for r in db_rows(tmp_path / "db.sqlite3", "SELECT * FROM exchanges")}
    assert rows == {"top.png": "default", "sum.png": "tutor", "q.png": "local"}


def test_permanent_failure_falls_back_to_the_next_profile(
    tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    main, local = servers
    inbox = write_profiles_config(tmp_path, main, local, tutor={"llm": {"model": "strong"}, "fallback": ["local"]})
    main.script(Fault.status(404))  # e.g. the model name is wrong
    results = process_files(load_config(tmp_path / "c.yaml"), [samples.make_png(inbox / "math" / "q.png", (300, 400))])
    assert results[0].answered
    assert "local answers" in pdf_text(outputs(inbox / "math", "RESPONSE_")[0])
    row = db_rows(tmp_path / "db.sqlite3", "SELECT profile, model FROM exchanges")[0]
    assert row["profile"] == "local"


def test_transient_failure_does_not_fall_back(tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    main, local = servers
    inbox = write_profiles_config(tmp_path, main, local, tutor={"llm": {"model": "strong"}, "fallback": ["local"]})
    main.script(Fault.status(503))
    results = process_files(load_config(tmp_path / "c.yaml"), [samples.make_png(inbox / "math" / "q.png", (300, 400))])
    assert results[0].answered and not local.requests  # retried on its own backend, not handed off


def test_budget_spent_uses_the_fallback_then_says_when_it_resets(
    tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    main, local = servers
    # Room for the first question (estimated ~520 tokens), not for a second after it (~980 billed).
    capped = {"llm": {"model": "strong"}, "budget": {"daily_tokens": 900}, "fallback": ["local"]}
    inbox = write_profiles_config(tmp_path, main, local, tutor=capped)
    loaded = load_config(tmp_path / "c.yaml")
    first = process_files(loaded, [samples.make_png(inbox / "math" / "a.png", (300, 400))], clock=end_of_january)
    second = process_files(loaded, [samples.make_png(inbox / "math" / "b.png", (320, 400))], clock=end_of_january)
    assert first[0].answered and second[0].answered
    assert len(main.requests) == 1 and len(local.requests) == 1  # the second went to the fallback

    # without a fallback, the user gets an ERROR_ that says the budget is spent and when it resets
    alone = {"llm": {"model": "strong"}, "budget": {"monthly_cost": 0.004, "input_price_per_million": 5}}  # 800
    inbox2 = write_profiles_config(tmp_path / "two", main, local, tutor=alone)
    loaded2 = load_config(tmp_path / "two" / "c.yaml")
    first = process_files(loaded2, [samples.make_png(inbox2 / "math" / "a.png", (300, 400))], clock=end_of_january)
    assert first[0].answered
    over = process_files(loaded2, [samples.make_png(inbox2 / "math" / "b.png", (320, 400))], clock=end_of_january)
    assert not over[0].answered
    text = pdf_text(outputs(inbox2 / "math", "ERROR_")[0])
    assert "monthly budget" in text and "resets at 2026-02-01 00:00 UTC" in text  # the month of the clock given


def test_periods_are_utc_days_and_months() -> None:
    day, tomorrow, month, next_month = period_starts(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (day.day, tomorrow.year, tomorrow.month, tomorrow.day) == (31, 2027, 1, 1)
    assert (month.day, next_month.year, next_month.month) == (1, 2027, 1)


def test_unknown_profiles_and_bad_overrides_are_config_errors(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = write_config(tmp_path / "c.yaml", inbox, tmp_path / "db", profiles={"a": {"fallback": ["ghost"]}})
    with pytest.raises(ConfigError, match="no profile named 'ghost'"):
        startup.require(load_config(path))
    path = write_config(tmp_path / "c.yaml", inbox, tmp_path / "db", profiles={"a": {"llm": {"timeout_seconds": -1}}})
    with pytest.raises(ConfigError, match=r"profiles\.a\.llm\.timeout_seconds"):
        startup.require(load_config(path))


def test_a_profile_may_trade_legibility_for_fewer_image_tokens(
    tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    """llm.min_stroke_px, per profile: the same page of 4-px writing goes to a tile-billed model (gpt-4o) as
    2 × 2 tiles of 512 px (765 tokens) at the default floor of 2 px, and as one low-detail image of ≤ 512 px
    (85 tokens) with the floor lowered to 1 px; the pen it shows is thinner but not below that floor. The
    estimate is recorded with the exchange."""
    main, local = servers
    inbox = write_profiles_config(tmp_path, main, local, cheap={"llm": {"min_stroke_px": 1}})
    (inbox / "cheap").mkdir()
    config = tmp_path / "c.yaml"
    text = config.read_text().replace("model: general", "model: gpt-4o")
    config.write_text(text.replace("local: local}", "local: local, cheap: cheap}"))
    files = []
    for folder in (inbox, inbox / "cheap"):
        image = Image.new("L", (1150, 1550), 255)
        draw = ImageDraw.Draw(image)
        for row in range(20):  # lines of zig-zag "writing", 4 px pen
            y = 60 + row * 72
            draw.line([(x, y + (30 if (x // 14) % 2 else 0)) for x in range(50, 1100, 14)], fill=0, width=4)
        image.save(folder / "q.png")
        files.append(folder / "q.png")
    results = process_files(load_config(config), files)
    assert all(r.answered for r in results), [r.message for r in results]
    sent = []
    for request in main.requests:  # one file after the other: the default profile's first
        [part] = [p for p in request.body["messages"][-1]["content"] if p["type"] == "image_url"]
        [image] = request.images()
        sent.append((part["image_url"]["detail"], image.convert("L")))
    [(default_detail, default_image), (cheap_detail, cheap_image)] = sent
    assert default_detail == "auto" and max(default_image.size) > 512
    assert cheap_detail == "low" and max(cheap_image.size) <= 512
    pen = stroke_width(ink_mask(cheap_image))
    assert 0.9 <= pen < stroke_width(ink_mask(default_image))
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT profile, metadata FROM exchanges ORDER BY exchange_id")
    estimates = [(r["profile"], json.loads(r["metadata"])["image_tokens_estimated"]) for r in rows]
    assert estimates == [("default", 765), ("cheap", 85)]
