"""Backends from outside eink-llm: ``module:factory`` references, entry points, and the documented example.

The plugin package in ``tests/plugin_pkg`` is "installed" the way pip would leave it, but only for the test: its
module is copied into a temporary directory next to a ``*.dist-info`` whose ``entry_points.txt`` is generated from
the package's own ``pyproject.toml``, and that directory goes on ``sys.path`` until the test ends. Offline, fast,
and nothing remains in the environment afterwards.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from eink_llm.backends import (
    BackendSettings,
    LLMRequest,
    Message,
    PageImage,
    available_backends,
    create_backend,
)
from eink_llm.backends.openai import OpenAIBackend
from eink_llm.backends.plugins import ENTRY_POINT_GROUP, entry_point_backends, is_reference
from eink_llm.errors import BackendError
from tests.test_backends_command import doc_example

PLUGIN_PKG = Path(__file__).resolve().parent / "plugin_pkg"


def install_into(site: Path, project: Path, *, extra_entry_points: dict[str, str] | None = None) -> None:
    """What ``pip install project`` leaves in site-packages, for a pure-Python setuptools project."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    for package in project.iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            shutil.copytree(package, site / package.name)
    entries = dict(meta["entry-points"][ENTRY_POINT_GROUP], **(extra_entry_points or {}))
    dist_info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {value}" for name, value in entries.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary site-packages on sys.path; modules imported from it are forgotten afterwards."""
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))  # also invalidates importlib's caches
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and str(getattr(module, "__file__", "") or "").startswith(str(directory)):
            del sys.modules[name]


def test_plugin_is_found_through_its_entry_point(site: Path) -> None:
    assert "demo-plugin" not in available_backends()
    install_into(site, PLUGIN_PKG)
    assert entry_point_backends()["demo-plugin"] == "eink_llm_demo_plugin.backend:create"
    assert "demo-plugin" in available_backends()
    backend = create_backend(BackendSettings(backend=" Demo-Plugin ", model="m1"))
    assert backend.name == "demo-plugin" and backend.capabilities.max_images == 4
    response = backend.complete(LLMRequest(system_prompt="", pages=(PageImage(b"x", "image/png", 1, 1),)))
    assert response.text == "DEMO PLUGIN: 1 PAGE(S), MODEL m1"


def test_built_in_names_win_over_plugins(site: Path) -> None:
    install_into(site, PLUGIN_PKG, extra_entry_points={"openai": "eink_llm_demo_plugin.backend:create"})
    backend = create_backend(BackendSettings(backend="openai", model="m"))
    assert isinstance(backend, OpenAIBackend)
    backend.close()


def test_unknown_name_lists_installed_plugins(site: Path) -> None:
    install_into(site, PLUGIN_PKG)
    with pytest.raises(BackendError) as caught:
        create_backend(BackendSettings(backend="nope"))
    assert "demo-plugin" in caught.value.todo and "anthropic" in caught.value.todo
    assert "package.module:factory" in caught.value.todo


def test_the_documented_example_backend_works(site: Path) -> None:
    (site / "my_backend.py").write_text(doc_example("my_backend.py"))
    assert 15 <= len(doc_example("my_backend.py").splitlines()) <= 30
    backend = create_backend(BackendSettings(backend="my_backend:create", extra={"greeting": "Hi"}))
    request = LLMRequest(system_prompt="", history=(Message("user", "q"),), pages=(PageImage(b"", "image/png", 1, 1),))
    response = backend.complete(request)
    assert response.text == "# Hi\n\nYou sent 1 page(s) after 1 earlier turn(s)."
    assert response.usage.input_tokens == 100 and response.model == "counting-1"
    assert backend.capabilities.media_types == ("image/png",)
    with pytest.raises(BackendError) as caught:
        backend.complete(LLMRequest(system_prompt="", pages=request.pages * 11))
    assert not caught.value.retryable


def test_dotted_attribute_references(site: Path) -> None:
    (site / "factories.py").write_text(
        "from eink_llm.backends.echo import EchoBackend\n\n"
        "class Holder:\n    make = EchoBackend\n\n"
        "NOT_CALLABLE = 42\n\n"
        "def broken(settings):\n    return object()\n\n"
        "class NoCapabilities:\n    name = 'x'\n    def __init__(self, settings): pass\n"
        "    def complete(self, request): pass\n    def close(self): pass\n"
    )
    assert create_backend(BackendSettings(backend="factories:Holder.make")).name == "echo"
    for reference, words in [
        ("factories:NOT_CALLABLE", "could not be loaded"),
        ("factories:missing", "could not be loaded"),
        ("no_such_module_xyz:create", "could not be loaded"),
        ("factories:broken", "did not produce a usable backend"),
        ("factories:NoCapabilities", "did not produce a usable backend"),
    ]:
        with pytest.raises(BackendError) as caught:
            create_backend(BackendSettings(backend=reference))
        assert words in caught.value.what and not caught.value.retryable, reference


@pytest.mark.parametrize(
    ("name", "expected"),
    [("pkg.mod:create", True), ("mod:Class.make", True), ("openai", False), ("a:b:c", False), ("x:", False)],
)
def test_is_reference(name: str, expected: bool) -> None:
    assert is_reference(name) is expected
