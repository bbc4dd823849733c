"""Backends from other packages: ``llm.backend: package.module:factory``, or a name from an entry point.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."eink_llm.backends"]
    mybackend = "my_package.backend:create"

and once it is installed next to eink-llm, ``llm.backend: mybackend`` picks it. Without packaging, a dotted
reference such as ``llm.backend: my_module:create`` works for any module on the Python path. Either way the
factory receives a :class:`~eink_llm.backends.base.BackendSettings` and returns a backend (see docs/backends.md).

Entry points are looked up on every call (it takes milliseconds, and only when a backend is created), so a
package installed while the daemon runs is found on the next reload.
"""

from __future__ import annotations

import re

#: The entry-point group plugins register their factories in.
ENTRY_POINT_GROUP = "eink_llm.backends"

#: ``package.module:attribute`` (the attribute may be dotted, e.g. ``module:Class.create``).
_REFERENCE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``module:factory`` reference rather than a backend's name."""
    return _REFERENCE.fullmatch(name.strip()) is not None


def entry_point_backends() -> dict[str, str]:
    """Installed plugin backends: lower-cased name → ``module:factory``. The first of two same names wins."""
    found: dict[str, str] = {}
    from importlib.metadata import entry_points  # here, not at the top: it costs 40-75 ms every command pays

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name.strip().lower(), f"{entry.module}:{entry.attr}")
    return found
