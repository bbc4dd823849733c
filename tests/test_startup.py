"""The first hour: `check-config` tells the truth `run` would (same problems, same exit code, all at once), and
config errors say where (line, column) and what was meant."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import samples
from tests.harness import clean_env, outputs, wait_until

BROKEN = {
    "unknown-backend": ("llm: {backend: opneai, model: m}\n", "Did you mean “openai”?"),
    "unknown-device": ("output: {device: remarkabel2}\n", "Did you mean 'remarkable2'?"),
    "missing-folder-parent": ("watch: {folders: [/nonexistent-disk/tablet]}\n", "/nonexistent-disk"),
    "folder-is-a-file": ("watch: {folders: [afile]}\n", "is a file, not a folder"),
    "openai-without-model": ("llm: {backend: openai}\n", "needs llm.model"),
    "command-program-missing": (
        "llm: {backend: command, options: {command: [/nonexistent/ask-my-model, --fast]}}\n",
        "The answering program /nonexistent/ask-my-model does not exist.",
    ),
    "unknown-profile": (
        "watch:\n  folders:\n    - {path: in, profile: tutr}\nprofiles:\n  tutor: {}\n",
        "watch.folders.0.profile (line 4, column 18): there is no profile named 'tutr'. Did you mean 'tutor'?",
    ),
}


def eink(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eink_llm", *args],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_config_and_run_agree_on_a_broken_config(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    (tmp_path / "in").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{database: {tmp_path / 'db.sqlite3'}}}\n" + text)
    checked = eink("check-config", "-c", str(config), home=tmp_path)
    ran = eink("run", "-c", str(config), home=tmp_path)
    assert checked.returncode != 0, checked.stdout
    assert checked.returncode == ran.returncode, (checked.stderr, ran.stderr)
    assert expected in checked.stderr and expected in ran.stderr, checked.stderr
    assert "does not exist" not in checked.stderr or case in ("missing-folder-parent", "command-program-missing")
    assert "Traceback" not in checked.stderr + ran.stderr


def test_check_config_lists_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"storage: {{database: {tmp_path / 'db.sqlite3'}}}\n"
        "watch:\n  folders:\n    - afile\n    - {path: new, profile: tutr}\n"
        "llm: {backend: openai}\noutput: {device: etch-a-sketch}\n"
        "profiles:\n  tutor: {llm: {backend: opneai}}\n"
    )
    result = eink("check-config", "-c", str(config), home=tmp_path)
    for expected in ("afile is a file", "'tutr'", "needs llm.model", "etch-a-sketch", "profiles.tutor.llm.backend"):
        assert expected in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()  # check-config creates nothing


def test_a_missing_folder_is_created_when_its_parent_exists(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{database: {tmp_path / 'db.sqlite3'}}}\nwatch: {{folders: [~/tablet]}}\n")
    checked = eink("check-config", "-c", str(config), home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"{tmp_path / 'tablet'} does not exist yet" in checked.stdout
    assert not (tmp_path / "tablet").exists()


def test_an_unusable_database_location_is_found_before_start(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite3").mkdir()  # a folder where the database file should be
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{database: {tmp_path / 'state.sqlite3'}}}\nwatch: {{folders: [{tmp_path}]}}\n")
    checked = eink("check-config", "-c", str(config), home=tmp_path)
    ran = eink("run", "-c", str(config), home=tmp_path)
    assert checked.returncode == ran.returncode == 78
    assert "storage.database" in checked.stderr and "is a folder" in ran.stderr


def test_validation_errors_say_line_column_and_what_was_meant(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("llm:\n  backend: echo\n  modle: gpt-4o-mini\nwatch:\n  setle_seconds: 2\n")
    result = eink("check-config", "-c", str(config), home=tmp_path)
    assert result.returncode == 78
    assert "llm.modle (line 3, column 3): unknown option. Did you mean 'model'?" in result.stderr, result.stderr
    assert "watch.setle_seconds (line 5, column 3)" in result.stderr and "'settle_seconds'" in result.stderr


def test_unindented_keys_get_a_helpful_message(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("llm:\nbackend: openai\nmodel: gpt-4o-mini\n")
    result = eink("check-config", "-c", str(config), home=tmp_path)
    assert result.returncode == 78
    assert "valid dictionary or instance" not in result.stderr
    assert "llm (line 1, column 1): this section is empty" in result.stderr, result.stderr
    assert "backend (line 2, column 1): unknown option. It is an option of llm: indent it" in result.stderr


def test_the_example_config_copied_as_the_readme_says_answers_a_page(tmp_path: Path) -> None:
    """README: copy config.example.yaml to ~/.config/eink-llm/config.yaml, then `eink-llm run`."""
    home = tmp_path / "home"
    target = home / ".config" / "eink-llm" / "config.yaml"
    target.parent.mkdir(parents=True)
    shutil.copy(Path(__file__).parent.parent / "config.example.yaml", target)
    env = {k: v for k, v in clean_env(home).items() if k not in {"XDG_CONFIG_HOME", "XDG_STATE_HOME"}}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "eink_llm", "run"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            inbox = home / ".config" / "eink-llm" / "inbox"  # relative to the config file, created at start
            wait_until(lambda: inbox.is_dir() or process.poll() is not None, timeout=30, what="the inbox")
            assert process.poll() is None, log_path.read_text()
            samples.make_png(inbox / "question.png", (300, 400))
            wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=60, what="an answer")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    assert (home / ".local" / "state" / "eink-llm" / "eink-llm.sqlite3").exists()
