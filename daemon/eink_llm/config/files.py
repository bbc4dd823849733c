"""Finding, reading and validating the config file: discovery order, ``${ENV}`` references, relative paths,
and every problem reported at once with its path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from eink_llm import redact
from eink_llm.config.schema import APP, ENV_CONFIG, Config, config_error
from eink_llm.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus where it came from (``None`` for the built-in defaults)."""

    config: Config
    source: Path | None
    #: Where each key path of the file was written: ``("watch", "folders", 0)`` → (line, column), 1-based.
    marks: Mapping[tuple[str | int, ...], tuple[int, int]] = field(default_factory=dict)

    @property
    def database_path(self) -> Path:
        return self.config.storage.database or default_database_path()


# --- loading -----------------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def candidate_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a config is looked for when ``-c`` is not given, in order."""
    env = os.environ if env is None else env
    paths = []
    if env.get(ENV_CONFIG):
        paths.append(Path(env[ENV_CONFIG]).expanduser())
    xdg = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    paths += [Path(xdg) / APP / "config.yaml", Path("/etc") / APP / "config.yaml"]
    return paths


def default_database_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=; may list several, colon-separated
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / f"{APP}.sqlite3"
    state = env.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(state) / APP / f"{APP}.sqlite3"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load ``path``, or the first existing candidate, or the built-in defaults.

    An explicit path (``-c`` or ``$EINK_LLM_CONFIG``) must exist; the other locations are optional.
    """
    env = os.environ if env is None else env
    if path is None:
        explicit = env.get(ENV_CONFIG)
        if explicit:
            path = Path(explicit).expanduser()
        else:
            path = next((p for p in candidate_paths(env)[-2:] if p.is_file()), None)
    if path is None:
        return LoadedConfig(config=_validate({}, base=Path.cwd(), marks={}), source=None)
    config, marks = _parse(path, env)
    return LoadedConfig(config=config, source=path, marks=marks)


def parse_config_file(path: Path, env: Mapping[str, str] | None = None) -> Config:
    return _parse(path, env)[0]


def _parse(path: Path, env: Mapping[str, str] | None) -> tuple[Config, dict[tuple[str | int, ...], tuple[int, int]]]:
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"The config file {path} does not exist.",
            "Check the path, or copy config.example.yaml there.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The config file {path} cannot be read.", "Check its permissions and encoding.", detail=str(exc)
        ) from None
    try:
        raw = yaml.safe_load(text)
        marks = key_marks(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"The config file {path} is not valid YAML{where}: {problem}.",
            "Fix the indentation or quoting there.",
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"The config file {path} must be a mapping of sections (watch:, llm:, …).",
            "See config.example.yaml.",
        )
    substituted: list[tuple[str, str, str]] = []
    raw = _interpolate(raw, env, (), substituted)
    redact.register_config(raw, substituted)  # before validating: an error message may quote a value
    return _validate(raw, base=path.resolve().parent, marks=marks), marks


def key_marks(node: yaml.Node | None) -> dict[tuple[str | int, ...], tuple[int, int]]:
    """Line and column (1-based) of every key and list item in a composed YAML document, by key path."""
    marks: dict[tuple[str | int, ...], tuple[int, int]] = {}

    def walk(current: yaml.Node, where: tuple[str | int, ...]) -> None:
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                path = (*where, str(key.value))
                marks[path] = (key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, path)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                path = (*where, index)
                marks[path] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, path)

    if node is not None:
        walk(node, ())
    return marks


def _interpolate(
    value: Any, env: Mapping[str, str], where: tuple[str, ...], substituted: list[tuple[str, str, str]]
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values (never in keys, never producing YAML).
    Each substitution is added to ``substituted`` as ``(VAR, value, key)``, for the redactor."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*where, str(k)), substituted) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*where, str(i)), substituted) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            substituted.append((name, env[name], where[-1] if where else ""))
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{'.'.join(where)}: the environment variable {name} is not set.",
            f"Set {name} (for systemd, in an EnvironmentFile=), or write the value into the config.",
        )

    return _ENV_REF.sub(substitute, value)


def _validate(raw: dict[str, Any], base: Path, marks: Mapping[tuple[str | int, ...], tuple[int, int]]) -> Config:
    """Schema validation: every problem at once, each with its line. Whether the names the config uses
    (profiles, backends, devices) and its folders exist is checked at start-up (``eink_llm.startup``)."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, marks=marks) from None
    return _resolve_paths(config, base)


def _resolve_paths(config: Config, base: Path) -> Config:
    folders = [f.model_copy(update={"path": _absolute(f.path, base)}) for f in config.watch.folders]
    database = config.storage.database
    return config.model_copy(
        update={
            "watch": config.watch.model_copy(update={"folders": folders}),
            "storage": config.storage.model_copy(update={"database": _absolute(database, base) if database else None}),
        }
    )


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def masked_dump(config: Config) -> dict[str, Any]:
    """The effective config as plain data, secrets replaced by ``********`` (api keys at every level, profile
    ones included, header values, key-like URL parameters; see ``redact``): safe to print or log."""
    data: dict[str, Any] = redact.masked(config.model_dump(mode="json"))
    return data
