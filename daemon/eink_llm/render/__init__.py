"""Markdown answers → PDFs that read well on e-ink tablets.

The pipeline only needs this module's names; the sub-modules split the work:
``devices`` (page sizes), ``fonts`` (bundled DejaVu, text hygiene), ``styles`` (sizes and greys),
``markdown`` (tokens → flowables), ``flowables`` (wrapped code, quote bars), ``document`` (page geometry,
header/footer, metadata) and ``api`` (the entry points and their fallbacks).
"""

from __future__ import annotations

from eink_llm.render.api import render_answer, render_error
from eink_llm.render.devices import DEFAULT_DEVICE, DEVICES, Device, get_device
from eink_llm.render.document import RenderMeta

__all__ = [
    "DEFAULT_DEVICE",
    "DEVICES",
    "Device",
    "RenderMeta",
    "get_device",
    "render_answer",
    "render_error",
]
