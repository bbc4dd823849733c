"""Hostile ```svg blocks: each shown as its source under a one-line note, within a generous time bound, with no
file read, no request sent, no process started; and the fallback when svglib is not installed."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eink_llm.render.api import render, render_answer
from tests.test_render import META, squash
from tests.test_render_drawings import CIRCUIT, fenced, needs_svglib, page_objects

#: A generous bound for refusing any hostile drawing, whole answer rendered (the real cost is milliseconds; the
#: slow style sheet takes the 3 s time limit).
HOSTILE_BOUND_S = 10.0


# -- hostile SVG --------------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012  (one list for the server's lifetime)

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.end_headers()
        self.wfile.write(b'<svg xmlns="http://www.w3.org/2000/svg"><text>FROM-THE-NETWORK</text></svg>')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()


SECRET = "TOPSECRET-7f3a9c"


def _hostile(secret: Path, url: str) -> dict[str, tuple[str, str]]:
    """name -> (svg source, a word the one-line reason must contain)."""
    ns = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    refs = [f"&l{i - 1};" * 10 for i in range(1, 10)]
    laughs = "".join(f'<!ENTITY l{i} "{refs[i - 1]}">' for i in range(1, 10))
    group = "".join('<rect width="1" height="1"/>' for _ in range(10))
    uses = ["".join(f'<use xlink:href="#g{i - 1}"/>' for _ in range(10)) for i in range(1, 7)]
    nested = "".join(f'<g id="g{i}">{uses[i - 1]}</g>' for i in range(1, 7))
    return {
        "href to a local file": (f'<svg {ns} viewBox="0 0 10 10"><use xlink:href="{secret}#x"/></svg>', "outside"),
        "relative href": (f'<svg {ns} viewBox="0 0 10 10"><use href="{secret.name}"/></svg>', "outside"),
        "file url image": (f'<svg {ns}><image xlink:href="file://{secret}" width="9" height="9"/></svg>', "image"),
        "href to a url": (f'<svg {ns} viewBox="0 0 10 10"><use href="{url}/use.svg#a"/></svg>', "outside"),
        "image from a url": (f'<svg {ns}><image href="{url}/a.png" width="9" height="9"/></svg>', "image"),
        "css import": (f"<svg {ns}><style>@import url({url}/x.css);</style><rect/></svg>", "import"),
        "fill from a url": (f"<svg {ns}><rect width='9' height='9' fill='url({url}/p#a)'/></svg>", "outside"),
        "billion laughs": (
            f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY l0 "lol">{laughs}]><svg {ns}><text>&l9;</text></svg>',
            "entities",
        ),
        "external entity": (
            f'<!DOCTYPE svg [<!ENTITY s SYSTEM "file://{secret}">]><svg {ns}><text x="1" y="9">&s;</text></svg>',
            "entities",
        ),
        "a million elements": (f"<svg {ns}>" + "<rect/>" * 1_000_000 + "</svg>", "too large"),
        "twenty thousand elements": (f"<svg {ns}>" + "<g/>" * 20_000 + "</svg>", "too many elements"),
        "use bomb": (f'<svg {ns}><defs><g id="g0">{group}</g>{nested}</defs><use xlink:href="#g6"/></svg>', "expand"),
        "use loop": (f'<svg {ns}><g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>', "loop"),
        "huge viewBox": (f'<svg {ns} viewBox="0 0 1e9 1e9"><rect width="10" height="10"/></svg>', "too large"),
        "huge scale": (
            f'<svg {ns} viewBox="0 0 10 10"><g transform="scale(500)"><g transform="matrix(900 0 0 900 0 0)">'
            '<rect width="1" height="1"/></g></g></svg>',
            "enlarge",
        ),
        "deep nesting under many marked lines": (
            f'<svg {ns}><defs><marker id="m"><rect width="1" height="1"/></marker></defs>'
            + "<g>" * 250
            + '<line x2="1"/>' * 4000
            + "</g>" * 250
            + "</svg>",
            "nested",
        ),
        "deep nesting": (f"<svg {ns}>" + "<g>" * 100 + "</g>" * 100 + "</svg>", "nested"),
        "long path": (f'<svg {ns}><path d="M0 0{" L1 1" * 20_000}"/></svg>', "too long"),
        "script": (f"<svg {ns}><script>alert(1)</script></svg>", "script"),
        "slow style sheet": (  # within every size limit, but matching its selectors takes many seconds
            f"<svg {ns} viewBox='0 0 9 9'><style>"
            + "".join(f"svg g g g rect:nth-child({i}n+1) {{ stroke-width: {i % 5}; }}" for i in range(1, 1000))
            + "</style><g><g><g>"
            + '<rect x="1" y="1" width="5" height="5"/>' * 3000
            + "</g></g></g></svg>",
            "longer than",
        ),
        "letters placed one by one": (  # one shape per letter, all in one element the time limit cannot cut
            f'<svg {ns} viewBox="0 0 99 99"><text x="{" ".join(["1"] * 3000)}" y="5">{"A" * 3000}</text></svg>',
            "one by one",
        ),
        "a book of text": (f'<svg {ns} viewBox="0 0 9 9"><text y="5">{"word " * 2000}</text></svg>', "too much text"),
        "not xml": ("<svg><g></svg>", "not well-formed"),
        "not svg": ("<html><body>hi</body></html>", "<svg>"),
    }


@needs_svglib
def test_hostile_svgs_are_shown_as_source_quickly_and_reach_nothing(
    tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    url, hits = listener
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (tmp_path / "secret.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><text>{SECRET}</text></svg>')
    for name, (source, reason) in _hostile(tmp_path / "secret.svg", url).items():
        started = time.monotonic()
        result = render(fenced("svg", source), META)
        took = time.monotonic() - started
        assert took < HOSTILE_BOUND_S, f"{name}: {took:.1f} s"
        assert result.stats.drawings == 0, name
        assert len(result.stats.drawings_as_source) == 1 and reason in result.stats.drawings_as_source[0], (
            name,
            result.stats.drawings_as_source,
        )
        assert SECRET.encode() not in result.pdf and b"FROM-THE-NETWORK" not in result.pdf, name
        if len(source) < 5_000:  # the big ones are long code blocks; their first lines are enough
            visible = str(page_objects(result.pdf)["visible"])
            assert "Drawing shown as source:" in visible and "After the drawing." in visible, name
            assert squash(source)[:200] in squash(visible), name
    assert hits == []


def test_an_answer_with_a_refused_drawing_is_still_an_answer() -> None:
    """What the pipeline calls: the answer PDF (with its reply page), never an error for one bad drawing."""
    markdown = "# Result\n\n" + fenced("svg", "<svg><image href='file:///etc/passwd'/></svg>") + fenced("plot", "x: 1")
    pdf = render_answer(markdown, META)
    visible = squash(str(page_objects(pdf)["visible"]))
    assert visible.count("Drawingshownassource") == 2 and "Result" in visible and "Afterthedrawing." in visible


@needs_svglib
def test_svglib_never_opens_a_file_for_fonts_or_references(tmp_path: Path) -> None:
    """Font families that look like paths and fragments that are not there are harmless: drawn, nothing read."""
    source = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 20">'
        f'<text x="1" y="15" font-family="{tmp_path}/x, ../../etc/passwd, Comic Sans">Hi</text>'
        '<use href="#missing"/></svg>'
    )
    probe = (
        "import sys, builtins, os\n"
        "from eink_llm.render import drawings\n"
        'drawings.svg_picture(\'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>\')\n'
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append((event, str(args[0])[:200]))"
        " if event in ('open', 'subprocess.Popen', 'socket.connect', 'os.listdir') else None)\n"
        f"drawings.svg_picture({source!r})\n"
        "print(opened)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_without_svglib_an_svg_block_is_shown_as_source_with_a_note() -> None:
    probe = (
        "import sys\n"
        "sys.modules['svglib'] = None\n"  # as if the optional extra were not installed
        "sys.modules['svglib.svglib'] = None\n"
        "from tests.test_render import META\n"
        "from eink_llm.render.api import render\n"
        f"result = render({fenced('svg', CIRCUIT)!r}, META)\n"
        "print(result.stats.drawings, result.stats.drawings_as_source)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("0 [") and "eink-llm[drawings]" in out.stdout
