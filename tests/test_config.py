"""The config schema: defaults, validation messages, env interpolation, and the example kept in sync."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from eink_llm.config import Config, load_config, masked_dump, parse_config_file
from eink_llm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_defaults_watch_inbox_with_echo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "nothing"),
        "XDG_STATE_HOME": str(tmp_path / "st"),
    }
    loaded = load_config(None, env=env)
    assert loaded.source is None
    assert loaded.config.llm.backend == "echo"
    assert [f.path for f in loaded.config.watch.folders] == [tmp_path / "inbox"]
    assert loaded.config.watch.settle_seconds == 2
    assert loaded.config.storage.database is None


def test_database_default_follows_systemd_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    loaded = load_config(write(tmp_path, "{}"))
    assert loaded.database_path == tmp_path / "state" / "eink-llm.sqlite3"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_config(write(tmp_path, "{}")).database_path == tmp_path / "xdg" / "eink-llm" / "eink-llm.sqlite3"


def test_env_var_points_to_config(tmp_path: Path) -> None:
    path = write(tmp_path, "llm: {backend: openai, model: m}\n")
    assert load_config(None, env={"EINK_LLM_CONFIG": str(path)}).config.llm.backend == "openai"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(None, env={"EINK_LLM_CONFIG": str(tmp_path / "missing.yaml")})


def test_folders_accept_strings_and_mappings_relative_to_the_file(tmp_path: Path) -> None:
    config = parse_config_file(write(tmp_path, "watch:\n  folders:\n    - a\n    - {path: /srv/b, user: alice}\n"))
    assert [(f.path, f.user) for f in config.watch.folders] == [
        (tmp_path / "a", None),
        (Path("/srv/b"), "alice"),
    ]


def test_every_error_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "watch:\n  settle_seconds: -1\n  colour: red\nllm:\n  timeout_seconds: nope\n")
    with pytest.raises(ConfigError) as info:
        parse_config_file(path)
    message = info.value.what
    assert "watch.settle_seconds (line 2, column 3):" in message
    assert "watch.colour (line 3, column 3): unknown option" in message
    assert "llm.timeout_seconds (line 5, column 3):" in message


def test_bad_yaml_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML at line 2"):
        parse_config_file(write(tmp_path, "watch:\n\tfolders: []\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_config_file(write(tmp_path, "- a\n- b\n"))


def test_env_interpolation_and_missing_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  api_key: ${KEY}\n  model: ${MODEL:-small}\n")
    config = parse_config_file(path, env={"KEY": "sk-secret-123"})
    assert config.llm.api_key is not None and config.llm.api_key.get_secret_value() == "sk-secret-123"
    assert config.llm.model == "small"
    with pytest.raises(ConfigError, match=r"llm\.api_key: the environment variable KEY is not set"):
        parse_config_file(path, env={})


def test_masked_dump_hides_the_key(tmp_path: Path) -> None:
    config = parse_config_file(write(tmp_path, "llm: {api_key: sk-secret-123}\n"))
    dumped = masked_dump(config)
    assert "sk-secret-123" not in yaml.safe_dump(dumped)
    assert dumped["llm"]["api_key"] == "********"
    assert config.llm.backend_settings().api_key == "sk-secret-123"


# --- the example file stays valid and documents every option -------------------------------------------


def _schema_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _schema_paths(annotation, f"{path}.")
    return paths


def _example_keys() -> set[str]:
    """Keys in the example, including commented-out ones (`# key:`), as dotted paths by indentation."""
    keys: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^(\s*)(?:#\s?)?(\s*)([a-z_]+):(\s|$)", line)
        if not match:
            continue
        indent = len(match.group(1)) + len(match.group(2))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(3)))
        keys.add(".".join(k for _, k in stack))
    return keys


def test_example_is_valid() -> None:
    config = parse_config_file(EXAMPLE, env={})
    assert config.llm.backend == "echo"


def test_example_shows_the_defaults() -> None:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    defaults = Config().model_dump(mode="json")
    for section, values in raw.items():
        for key, value in values.items():
            if key == "folders":
                continue
            assert value == defaults[section][key] or (value is None and defaults[section][key] is None), (
                f"{section}.{key}: example says {value!r}, default is {defaults[section][key]!r}"
            )


def test_example_documents_every_option() -> None:
    missing = set(_schema_paths(Config)) - _example_keys() - {"watch.folders.path", "watch.folders.user"}
    assert not missing, f"config.example.yaml lacks: {sorted(missing)}"


def test_every_option_has_a_description() -> None:
    def walk(model: type[BaseModel]) -> list[str]:
        undocumented = []
        for name, field in model.model_fields.items():
            if not field.description:
                undocumented.append(f"{model.__name__}.{name}")
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                undocumented += walk(field.annotation)
        return undocumented

    assert walk(Config) == []
