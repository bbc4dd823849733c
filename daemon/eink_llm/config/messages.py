"""Config errors a person can act on: the key path, its line and column in the file, and what was meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from eink_llm.errors import ConfigError

#: Where each key path of the file was written: ``("watch", "folders", 0)`` → (line, column), 1-based.
Marks = Mapping[tuple[str | int, ...], tuple[int, int]]


def validation_error(
    exc: ValidationError,
    prefix: tuple[str | int, ...] = (),
    *,
    model: type[BaseModel],
    root: type[BaseModel],
    marks: Marks | None = None,
) -> ConfigError:
    """Every validation problem on one line each: key path, line and column in the file, and help (the option
    meant by a misspelt key; a section left empty because its keys were not indented under it). ``model`` is
    what was validated (at ``prefix`` in the file), ``root`` the whole config's model."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = (*prefix, *loc)
        lines.append(f"{key_path(where)}{place(where, marks)}: {_explain(err, loc, model, root)}")
    return ConfigError(
        "The configuration is not valid:\n  " + "\n  ".join(lines),
        "Fix these entries; config.example.yaml documents every option.",
    )


def place(loc: tuple[str | int, ...], marks: Marks | None) -> str:
    """`` (line 3, column 5)`` for the deepest part of ``loc`` written in the file, else empty."""
    if not marks:
        return ""
    parts = _clean(loc)
    for end in range(len(parts), 0, -1):
        mark = marks.get(parts[:end])
        if mark:
            return f" (line {mark[0]}, column {mark[1]})"
    return ""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'model'?`` for a near miss among ``choices``, else empty."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _explain(err: Any, loc: tuple[str | int, ...], model: type[BaseModel], root: type[BaseModel]) -> str:
    parts = _clean(loc)
    if err["type"] == "extra_forbidden" and parts:
        known = _fields_at(model, parts[:-1])
        key = str(parts[-1])
        hint = did_you_mean(key, known) if known else ""
        if not hint and len(parts) == 1:  # a top-level key that belongs in a section: not indented
            owners = [name for name, info in root.model_fields.items() if key in _fields_of(info.annotation)]
            if owners:
                hint = f" It is an option of {owners[0]}: indent it under {owners[0]}: (two spaces)."
        return f"unknown option.{hint}" if hint else "unknown option (not one this version knows)."
    if err["type"] in {"model_type", "dict_type", "model_attributes_type"} and err.get("input") is None and parts:
        return (
            f"this section is empty. Its options must be indented under `{parts[-1]}:` (two spaces in front), "
            "not written at the start of the line."
        )
    return str(err["msg"])


def _clean(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic adds union-member tags ("function-after[...]", "bool") to locations; users want the key path.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"bool", "str"})))


def _fields_of(annotation: Any) -> list[str]:
    """The option names of a section type (``LLMConfig``, ``list[FolderConfig]``), else none."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return list(candidate.model_fields)
    return []


def _fields_at(model: type[BaseModel], parts: tuple[str | int, ...]) -> list[str]:
    """The option names valid at key path ``parts`` below ``model`` (list indexes and dict keys skipped)."""
    current: Any = model
    for part in parts:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
            continue
        inner = [a for a in get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        current = inner[-1]
    return _fields_of(current)


def key_path(loc: tuple[int | str, ...]) -> str:
    """``watch.folders.0.path``: a pydantic location as the key path a user reads in the file."""
    return ".".join(str(p) for p in _clean(loc)) or "(top level)"
