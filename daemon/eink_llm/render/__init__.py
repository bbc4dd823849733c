"""Markdown answers → PDFs that read well on e-ink tablets.

The pipeline only needs this module's names; the sub-modules split the work:
``devices`` (page sizes), ``fonts`` (bundled DejaVu, text hygiene) and ``fallback`` (system fonts for other
scripts), ``bidi`` (Arabic shaping, right-to-left order), ``styles`` (sizes and greys), ``markdown`` (tokens →
flowables) with ``tables`` and ``paragraphs``, ``mathsyntax``/``formulas``/``mathblocks`` (TeX math),
``flowables`` (wrapped code, quote bars), ``document`` (page geometry, header/footer, outline, metadata),
``boxes`` (the note and "You asked:" boxes), ``reply`` (the ruled reply page), ``metadata`` (conversation id in
the Info dictionary and XMP), ``api`` (the entry points and their fallbacks), ``conversation`` (a whole
conversation as one PDF) and ``preview`` (render a Markdown file, for the CLI).
"""

from __future__ import annotations

from eink_llm.render.api import Rendered, render, render_answer, render_error
from eink_llm.render.conversation import ConversationEntry, render_conversation
from eink_llm.render.devices import DEFAULT_DEVICE, DEVICES, Device, get_device
from eink_llm.render.document import RenderMeta
from eink_llm.render.preview import render_markdown_file

__all__ = [
    "DEFAULT_DEVICE",
    "DEVICES",
    "ConversationEntry",
    "Device",
    "RenderMeta",
    "Rendered",
    "get_device",
    "render",
    "render_answer",
    "render_conversation",
    "render_error",
    "render_markdown_file",
]
