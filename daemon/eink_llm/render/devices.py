"""Page geometry of the tablets we write answers for.

An answer PDF is sized to the tablet's screen so that it opens at 100 % with nothing to pan or zoom: on a
small e-ink panel, zooming means slow full refreshes. Sizes come from the panels' pixel counts and
densities (or the vendors' page sizes for their own notebooks), in millimetres because that is how the
vendors publish them.

Margins are (top, right, bottom, left). The top and bottom margins also hold the small running header and
footer (see :mod:`eink_llm.render.document`), so they are never smaller than :data:`MIN_TOP_BOTTOM_MM`.
On reMarkable tablets the toolbar covers about 13 mm of the left edge while it is open, so the left
margin is wider there — otherwise the first letters of every line hide under the toolbar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eink_llm.errors import RenderError

#: The header and footer bands need this much room; a smaller margin would push them off the page.
MIN_TOP_BOTTOM_MM = 8.0


@dataclass(frozen=True, slots=True)
class Device:
    """A page size and its margins, in millimetres.

    ``colour`` marks colour e-ink panels (Kaleido, Gallery): they draw grey by dithering colour filters,
    which makes grey text and hairlines look fuzzy, so for them all text is pure black and lines are
    drawn at least 1 pt thick.
    """

    name: str
    width_mm: float
    height_mm: float
    margin_mm: tuple[float, float, float, float]  # top, right, bottom, left
    colour: bool = False


def _from_pixels(
    name: str, width_px: int, height_px: int, ppi: float, margin: tuple[float, float, float, float]
) -> Device:
    """Panels are specified in pixels and ppi; converting here keeps the source figures visible."""
    return Device(name, round(width_px / ppi * 25.4, 1), round(height_px / ppi * 25.4, 1), margin)


_REMARKABLE_LEFT = 15.0  # ~13 mm toolbar + a little air
_TABLET = (10.0, 6.0, 10.0, 6.0)

DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device("remarkable2", 157.8, 210.4, (10.0, 6.0, 10.0, _REMARKABLE_LEFT)),
        Device("remarkable-paper-pro", 179.7, 239.6, (10.0, 7.0, 10.0, _REMARKABLE_LEFT), colour=True),
        Device("remarkable-move", 91.8, 163.2, (9.0, 4.0, 9.0, 14.0)),
        _from_pixels("boox-note-air", 1404, 1872, 227, _TABLET),
        Device("supernote-nomad", 118.9, 158.5, (9.0, 5.0, 9.0, 5.0)),
        Device("supernote-manta", 162.6, 216.8, _TABLET),
        _from_pixels("kindle-scribe", 1860, 2480, 300, _TABLET),
        Device("a4", 210.0, 297.0, (18.0, 18.0, 18.0, 18.0)),
        Device("a5", 148.0, 210.0, (14.0, 12.0, 14.0, 12.0)),
        Device("letter", 215.9, 279.4, (18.0, 19.0, 18.0, 19.0)),
    )
}

DEFAULT_DEVICE = "remarkable2"


def get_device(name: str) -> Device:
    """Look a device up by the name used in the configuration file.

    Names are matched case-insensitively and with ``_``/space treated as ``-``, because people type
    "reMarkable 2" or "remarkable_paper_pro" into config files.
    """
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    device = DEVICES.get(key) or DEVICES.get(key.replace("-", ""))
    if device is None:
        known = ", ".join(sorted(DEVICES))
        raise RenderError(
            f"The page size '{name}' is not one the daemon knows.",
            f"Set output.device in the configuration to one of: {known}.",
        )
    return device


def resolve_device(device: Device | str) -> Device:
    """Accept a name or a :class:`Device`, and reject geometry that cannot hold a page of text.

    A custom ``Device`` comes from code, not the config file, but a zero width or margins wider than the page
    would otherwise surface as an obscure layout exception deep inside reportlab.
    """
    dev = get_device(device) if isinstance(device, str) else device
    if not isinstance(dev, Device):
        raise RenderError(
            "The page size given to the renderer is not valid.",
            "Set output.device in the configuration to one of the listed device names.",
            detail=f"expected Device or str, got {type(dev).__name__}",
        )
    numbers = (dev.width_mm, dev.height_mm, *dev.margin_mm)
    if len(dev.margin_mm) != 4 or not all(isinstance(n, int | float) and math.isfinite(n) for n in numbers):
        raise RenderError(
            f"The page size '{dev.name}' has invalid measurements.",
            "Use one of the built-in device names in output.device.",
            detail=f"{dev!r}",
        )
    top, right, bottom, left = dev.margin_mm
    body_w = dev.width_mm - left - right
    body_h = dev.height_mm - max(top, MIN_TOP_BOTTOM_MM) - max(bottom, MIN_TOP_BOTTOM_MM)
    if min(numbers[2:]) < 0 or body_w < 40 or body_h < 60:
        raise RenderError(
            f"The page size '{dev.name}' leaves too little room for text.",
            "Use one of the built-in device names in output.device, or smaller margins.",
            detail=f"text area {body_w:.1f} x {body_h:.1f} mm; needs at least 40 x 60 mm",
        )
    return dev
