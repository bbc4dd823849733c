"""Backends from outside eink-llm: a plugin package installed by pip, ``module:factory`` references, and the
documented example.

The plugin package in ``tests/plugin_pkg`` is installed for real: ``pip install --no-index --no-build-isolation``
builds it offline with the setuptools of our own environment (the ``test`` extra) and installs it into a temporary
directory with ``--target``. A real ``eink-llm process`` then finds it through its entry point with that directory
on ``PYTHONPATH``, and in-process tests put the directory on ``sys.path`` until they end. Nothing remains in the
environment afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

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
from tests.harness import clean_env, outputs, pdf_text
from tests.test_backends_command import doc_example

PLUGIN_PKG = Path(__file__).resolve().parent / "plugin_pkg"


def pip_install(project: Path, workdir: Path, *, extra_entry_points: dict[str, str] | None = None) -> Path:
    """Build ``project`` and install it into ``workdir/site-packages`` with pip, offline; returns that directory.

    The project is copied first (pip builds in the source tree, leaving ``build/`` and ``*.egg-info`` behind), and
    ``extra_entry_points`` are added to the copy's ``eink_llm.backends`` group. Fails the test, with pip's own
    words, when pip cannot build offline: the build backend (setuptools ≥ 70.1, from the ``test`` extra) must be
    installed in this environment.
    """
    source = workdir / "src"
    shutil.copytree(project, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    if extra_entry_points:
        pyproject = source / "pyproject.toml"
        group = f'[project.entry-points."{ENTRY_POINT_GROUP}"]\n'
        lines = "".join(f'{name} = "{value}"\n' for name, value in extra_entry_points.items())
        pyproject.write_text(pyproject.read_text().replace(group, group + lines))
    target = workdir / "site-packages"
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps"]
    command += ["--no-cache-dir", "--disable-pip-version-check", "--no-input", "--target", str(target), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=workdir)
    if result.returncode != 0:
        pytest.fail(
            f"pip could not build and install {project.name} offline (exit {result.returncode}). Its build backend "
            "must already be in this environment: pip install -e '.[test]' (setuptools>=70.1).\n"
            f"{' '.join(command)}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return target


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo plugin, built and installed by pip into a temporary directory (once for this module)."""
    return pip_install(PLUGIN_PKG, tmp_path_factory.mktemp("demo-plugin"))


@contextlib.contextmanager
def on_sys_path(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``directory`` on sys.path until the test ends; modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(directory))  # also invalidates importlib's caches
    before = set(sys.modules)
    try:
        yield directory
    finally:
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is not None and str(getattr(module, "__file__", "") or "").startswith(str(directory)):
                del sys.modules[name]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty temporary site-packages on sys.path, for modules a test writes."""
    directory = tmp_path / "site-packages"
    directory.mkdir()
    with on_sys_path(directory, monkeypatch):
        yield directory


@pytest.fixture
def plugin_site(installed_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The pip-installed demo plugin on sys.path."""
    assert "demo-plugin" not in available_backends()  # not installed in the environment itself
    with on_sys_path(installed_plugin, monkeypatch):
        yield installed_plugin


def test_pip_installed_plugin_answers_in_a_real_eink_llm_process(installed_plugin: Path, tmp_path: Path) -> None:
    dist_info = installed_plugin / "eink_llm_demo_plugin-0.1.0.dist-info"
    assert (dist_info / "WHEEL").is_file() and (dist_info / "RECORD").is_file()  # made by pip, from a wheel
    assert "demo-plugin = eink_llm_demo_plugin.backend:create" in (dist_info / "entry_points.txt").read_text()

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    question = Image.new("L", (600, 800), 255)
    ImageDraw.Draw(question).line([(60, 60), (500, 300), (120, 600)], fill=0, width=6)
    question.save(inbox / "question.png")
    config = tmp_path / "config.yaml"
    settings = {
        "watch": {"folders": [str(inbox)]},
        "storage": {"database": str(tmp_path / "db.sqlite3")},
        "llm": {"backend": "demo-plugin", "model": "m1"},
    }
    config.write_text(yaml.safe_dump(settings))
    script = Path(sys.executable).with_name("eink-llm")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "eink_llm"]
    path = os.pathsep.join(filter(None, [str(installed_plugin), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [*program, "process", "-c", str(config), str(inbox / "question.png")],
        cwd=tmp_path,
        env=clean_env(tmp_path, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [answer] = outputs(inbox, "RESPONSE_")
    assert "DEMO PLUGIN: 1 PAGE(S), MODEL m1" in pdf_text(answer)


def test_plugin_is_found_through_its_entry_point(plugin_site: Path) -> None:
    assert entry_point_backends()["demo-plugin"] == "eink_llm_demo_plugin.backend:create"
    assert "demo-plugin" in available_backends()
    backend = create_backend(BackendSettings(backend=" Demo-Plugin ", model="m1"))
    assert backend.name == "demo-plugin" and backend.capabilities.max_images == 4
    response = backend.complete(LLMRequest(system_prompt="", pages=(PageImage(b"x", "image/png", 1, 1),)))
    assert response.text == "DEMO PLUGIN: 1 PAGE(S), MODEL m1"


def test_built_in_names_win_over_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    greedy = pip_install(PLUGIN_PKG, tmp_path, extra_entry_points={"openai": "eink_llm_demo_plugin.backend:create"})
    with on_sys_path(greedy, monkeypatch):
        assert entry_point_backends()["openai"] == "eink_llm_demo_plugin.backend:create"
        backend = create_backend(BackendSettings(backend="openai", model="m"))
        assert isinstance(backend, OpenAIBackend)
        backend.close()


def test_unknown_name_lists_installed_plugins(plugin_site: Path) -> None:
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
