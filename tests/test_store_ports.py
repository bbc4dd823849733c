"""The store's ports (``store/ports.py``): each mirrors the Store's methods exactly, and the modules that only
use the store are given a port, not the whole Store. (mypy --strict proves that Store implements every port;
this checks what mypy lets pass: defaults and parameter names that drifted apart.)"""

from __future__ import annotations

import importlib
import inspect
from typing import Protocol

import pytest

from eink_llm.store import Store, ports

PORTS = [getattr(ports, name) for name in ports.__all__]


def members(port: type) -> dict[str, object]:
    """The methods a port declares, its own and those of the ports it joins."""
    found: dict[str, object] = {}
    for cls in reversed(port.__mro__):
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        found.update({name: value for name, value in vars(cls).items() if inspect.isfunction(value)})
    return {name: value for name, value in found.items() if not name.startswith("_")}


@pytest.mark.parametrize("port", PORTS, ids=lambda port: port.__name__)
def test_each_port_mirrors_the_store(port: type) -> None:
    declared = members(port)
    assert declared, f"{port.__name__} declares no method"
    for name, method in declared.items():
        implemented = getattr(Store, name, None)
        assert implemented is not None, f"Store has no {name} ({port.__name__})"
        assert inspect.signature(method) == inspect.signature(implemented), f"{port.__name__}.{name}"


@pytest.mark.parametrize(
    "module",
    [
        "asking",
        "budget",
        "context",
        "delivery",
        "intake",
        "pipeline",
        "resolve",
        "status_page",
        "statusinfo",
    ],
)
def test_consumers_get_a_port_not_the_store(module: str) -> None:
    """These modules never open the database: they are handed the part of it they use."""
    assert not hasattr(importlib.import_module(f"eink_llm.{module}"), "Store")
