"""Render a Markdown file the way the daemon would render an answer: for ``eink-llm render ANSWER.md``.

Lets a person check how answers look on their tablet (or a new device profile, or a font size) without a
provider or a synced folder: ``eink-llm render answer.md --device remarkable-move -o out.pdf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eink_llm.errors import RenderError
from eink_llm.render.api import Rendered, render
from eink_llm.render.devices import DEFAULT_DEVICE, Device
from eink_llm.render.document import RenderMeta


def preview_meta(path: Path, transcription: str | None = None) -> RenderMeta:
    """Header data for a preview: the file's name as title, its modification time as the date."""
    try:
        created = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        created = datetime(2000, 1, 1, tzinfo=UTC)
    return RenderMeta(path.stem, "preview", 1, created, model="preview", transcription=transcription)


def render_markdown_file(
    path: str | Path,
    device: Device | str | Mapping[str, Any] = DEFAULT_DEVICE,
    out: str | Path | None = None,
    font_size: float = 11.0,
    *,
    transcription: str | None = None,
) -> Rendered:
    """Render the Markdown file ``path`` for ``device``; write the PDF to ``out`` (default: ``path`` with ``.pdf``).

    Returns the :class:`Rendered` result (PDF bytes, formula counts, characters without a font) so the CLI can
    print a summary. Raises :class:`RenderError` for an unreadable file or an unknown device.
    """
    source = Path(path)
    try:
        markdown = source.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RenderError(
            f"The Markdown file '{source}' could not be read.",
            "Check the path and that the file is readable.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    result = render(markdown, preview_meta(source, transcription), device=device, font_size=font_size)
    target = Path(out) if out is not None else source.with_suffix(".pdf")
    try:
        target.write_bytes(result.pdf)
    except OSError as exc:
        raise RenderError(
            f"The PDF could not be written to '{target}'.",
            "Check that the folder exists and is writable.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    return result
