"""The daemon's status page: short Markdown laid out on one page of the folder's device, like an answer.

It carries ``/EinkLLMKind (status)`` (and ``kind`` in our XMP namespace) instead of a conversation id, so that,
renamed or written on, it is never taken as a question (:func:`eink_llm.reader.origin.is_status_page`). It has
no date in its header or metadata: the page says itself when it was written, and the same content gives the
same bytes.
"""

from __future__ import annotations

from typing import Any

from reportlab.platypus import Flowable

from eink_llm.naming import KIND_STATUS
from eink_llm.render import fonts
from eink_llm.render.api import DeviceSpec, body_width, warn_missing
from eink_llm.render.devices import DEFAULT_DEVICE, resolve_device
from eink_llm.render.document import DocumentInfo, build_document
from eink_llm.render.markdown import Stats, markdown_flowables
from eink_llm.render.styles import make_theme

TITLE = "eink-llm status"


class _PageProbe(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """Takes no room; remembers the page it was drawn on (the last one, at the end of the story)."""

    def __init__(self) -> None:
        super().__init__()
        self.page = 0

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return 0.0, 0.0

    def draw(self) -> None:
        canv: Any = self.canv
        self.page = int(canv.getPageNumber())


def render_status(markdown: str, *, device: DeviceSpec = DEFAULT_DEVICE, font_size: float = 11.0) -> tuple[bytes, int]:
    """The status page as a PDF, and how many pages it took (the caller shortens it until that is one)."""
    dev = resolve_device(device)
    theme = make_theme(dev, font_size)
    fonts.ensure_fonts()
    probe = _PageProbe()
    info = DocumentInfo(
        title=TITLE, conversation="", label=TITLE, created=None, keywords=("eink-llm", "status"), kind=KIND_STATUS
    )
    with fonts.collect_missing() as missing:
        story = [*markdown_flowables(fonts.clean_text(markdown), theme, body_width(dev, theme), Stats()), probe]
        pdf = build_document(story, info, dev, theme)
    warn_missing(missing)
    return pdf, probe.page
