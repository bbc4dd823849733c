"""Backends from outside eink-llm: a plugin package installed by pip, ``module:factory`` references, and the
documented example.

The documented HTTP plugin (docs/backends.md, ``my_http_backend.py``) is built on the public helper
``eink_llm.backends.http`` and answers through a local server speaking its made-up wire format.

The plugin package in ``tests/plugin_pkg`` is installed for real: ``pip install --no-index --no-build-isolation``
builds it offline with the setuptools of our own environment (the ``test`` extra) and installs it into a temporary
directory with ``--target``. A real ``eink-llm process`` then finds it through its entry point with that directory
on ``PYTHONPATH``, and in-process tests put the directory on ``sys.path`` until they end. Nothing remains in the
environment afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image, ImageDraw

from eink_llm.backends import (
    Backend,
    BackendSettings,
    LLMRequest,
    Message,
    ModelOptions,
    PageImage,
    available_backends,
    create_backend,
)
from eink_llm.backends import http as public_http
from eink_llm.backends.http import CUT_OFF_NOTE, user_text
from eink_llm.backends.openai import OpenAIBackend
from eink_llm.backends.plugins import ENTRY_POINT_GROUP, entry_point_backends, is_reference
from eink_llm.errors import BackendError
from tests.fakes import FakeLLMServer, Fault, RecordedRequest, Route
from tests.harness import clean_env, outputs, pdf_text
from tests.test_backends_command import DOCS, doc_example

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


# --- an HTTP plugin on the public helper ------------------------------------------------------------------------

NOTES_KEY = "notes-key-0123456789-abcdefghijklmnop"


def _notes_images(body: Any) -> list[tuple[str, bytes]]:
    images = body.get("images", []) if isinstance(body, dict) else []
    return [("image/png", base64.b64decode(data, validate=True)) for data in images]


def _notes_answer(request: RecordedRequest, text: str, number: int) -> Any:
    body = request.body if isinstance(request.body, dict) else {}
    usage = {"in": 5 + 100 * len(_notes_images(body)), "out": len(text.split())}
    return {"answer": text, "truncated": False, "usage": usage, "model": f"{body.get('model')}-2026"}


#: The made-up API of the documented example: POST /v1/answer, ``{"answer": ...}`` back, ``{"error": ...}`` on error.
NOTES_ROUTE = Route(
    name="notes",
    method="POST",
    path=re.compile(r"/v1/answer"),
    answer=_notes_answer,
    error=lambda status, message: {"error": {"message": message}},
    images=_notes_images,
)


@pytest.fixture(scope="module")
def notes_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(routes=[NOTES_ROUTE]) as server:
        yield server


@pytest.fixture
def notes(site: Path, notes_server: FakeLLMServer) -> Iterator[Any]:
    """Builds the documented HTTP backend, loaded as a plugin (``my_http_backend:create``), on the local server."""
    notes_server.reset()
    (site / "my_http_backend.py").write_text(doc_example("my_http_backend.py"))
    made: list[Backend] = []

    def make(**fields: Any) -> Backend:
        fields = {"base_url": notes_server.base_url, "api_key": NOTES_KEY, "model": "notes-large", **fields}
        backend = create_backend(BackendSettings("my_http_backend:create", **{"timeout_seconds": 5.0, **fields}))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    assert not notes_server.errors, notes_server.errors


def notes_request() -> LLMRequest:
    return LLMRequest(
        system_prompt="Be brief.",
        history=(Message("user", "Earlier"), Message("assistant", "Answer")),
        pages=(PageImage(b"page one", "image/png", 1, 1), PageImage(b"page two", "image/png", 1, 1)),
        text="typed words",
        options=ModelOptions(max_output_tokens=222),
    )


def test_the_documented_http_plugin_answers_through_a_local_server(notes: Any, notes_server: FakeLLMServer) -> None:
    response = notes().complete(notes_request())
    sent = notes_server.last_request
    assert sent.path == "/v1/answer" and sent.headers["x-notes-key"] == NOTES_KEY
    assert sent.body["question"] == user_text(notes_request())  # the built-in backends' words, text layer included
    assert sent.body["history"] == [{"role": "user", "text": "Earlier"}, {"role": "assistant", "text": "Answer"}]
    assert [data for _, data in sent.image_payloads()] == [b"page one", b"page two"]
    assert sent.body["model"] == "notes-large" and sent.body["max_tokens"] == 222
    assert "received 2 page image(s)" in response.text
    assert response.usage.input_tokens == 205 and response.usage.output_tokens > 0
    assert response.model == "notes-large-2026"


@pytest.mark.parametrize(
    ("fault", "retryable", "retry_after", "words"),
    [
        (Fault.status(429, headers={"Retry-After": "7"}), True, 7.0, "too many requests"),
        (Fault.status(503), True, None, "overloaded or temporarily unavailable"),
        (Fault.status(401, json={"error": {"message": f"unknown key {NOTES_KEY}"}}), False, None, "API key"),
        (Fault.reply({"error": {"message": "upstream model is down"}}), True, None, "upstream model is down"),
        (Fault.garbage(), True, None, "could not be understood"),
        (Fault.reply({"answer": "<think>hmm</think>", "truncated": True}), False, None, "length limit"),
        (Fault.timeout(5), True, None, "did not answer within 1 second"),
    ],
)
def test_the_http_plugin_fails_like_the_built_in_backends(
    notes: Any, notes_server: FakeLLMServer, fault: Fault, retryable: bool, retry_after: float | None, words: str
) -> None:
    notes_server.script(fault)
    with pytest.raises(BackendError) as caught:
        notes(timeout_seconds=1.0).complete(notes_request())
    error = caught.value
    assert error.retryable is retryable and error.retry_after == retry_after
    assert words in error.what, error.what
    assert NOTES_KEY not in f"{error.what} {error.todo} {error.detail}"


def test_the_http_plugin_notes_a_cut_off_answer(notes: Any, notes_server: FakeLLMServer) -> None:
    notes_server.script(Fault.reply({"answer": "Half an answer", "truncated": True}))
    assert notes().complete(notes_request()).text == f"Half an answer\n\n{CUT_OFF_NOTE}"


def test_the_http_plugin_takes_a_mock_transport(notes: Any) -> None:
    """As docs/backends.md says: the helper's ``transport`` lets a plugin's own tests see the exact request."""
    module = importlib.import_module("my_http_backend")  # written by the ``notes`` fixture
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"answer": "Hi"})

    settings = BackendSettings("notes", api_key=NOTES_KEY, model="m")
    backend = module.NotesBackend(settings, transport=httpx.MockTransport(handler))
    try:
        response = backend.complete(notes_request())
    finally:
        backend.close()
    [request] = sent
    assert str(request.url) == "https://notes.example/v1/answer"  # its default address, no network needed
    assert json.loads(request.content)["images"] == [base64.b64encode(b"page one").decode(), "cGFnZSB0d28="]
    assert response.text == "Hi" and response.model == "m" and response.usage.input_tokens == 0


def test_every_public_http_helper_is_documented() -> None:
    documented = DOCS.read_text().partition("### A backend for an HTTP API")[2].partition("<!-- example")[0]
    missing = [name for name in public_http.__all__ if not re.search(rf"`\.?{name}\b", documented)]
    assert not missing, f"docs/backends.md does not describe {missing}"
    for name in public_http.__all__:
        assert getattr(public_http, name) is not None


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
