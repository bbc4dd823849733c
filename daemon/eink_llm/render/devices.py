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

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

    @classmethod
    def custom(
        cls,
        width_mm: float,
        height_mm: float,
        margins_mm: float | tuple[float, float] | tuple[float, float, float, float] | None = None,
        *,
        name: str = "custom",
        colour: bool = False,
    ) -> Device:
        """A page size of your own, e.g. for a tablet not in :data:`DEVICES`.

        ``margins_mm`` is one number (all sides), two (top/bottom, left/right) or four (top, right, bottom,
        left); by default 10 mm top and bottom and 6 mm at the sides, like the built-in tablets. Raises
        :class:`RenderError` when the numbers cannot make a readable page.
        """
        margins = _margins(DEFAULT_CUSTOM_MARGINS if margins_mm is None else margins_mm)
        try:
            width, height = float(width_mm), float(height_mm)
        except (TypeError, ValueError) as exc:
            raise _bad_custom(f"width_mm={width_mm!r}, height_mm={height_mm!r}") from exc
        return resolve_device(cls(str(name) or "custom", width, height, margins, bool(colour)))


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
        # Kaleido 3 colour panel (Note Air 3 C, Tab Ultra C): same page as the mono Note Air, no grey, no hairlines.
        Device("boox-note-air-c", 157.5, 210.0, _TABLET, colour=True),
    )
}

DEFAULT_DEVICE = "remarkable2"

#: Margins of a custom page when none are given: (top, right, bottom, left) in mm.
DEFAULT_CUSTOM_MARGINS = (10.0, 6.0, 10.0, 6.0)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(?:mm)?\s*$", re.IGNORECASE)


def _bad_custom(detail: str) -> RenderError:
    return RenderError(
        "The custom page size in the configuration is not valid.",
        "Give output.device as a device name, or as width_mm, height_mm and optionally margins_mm (numbers in mm).",
        detail=detail,
    )


def _margins(value: object) -> tuple[float, float, float, float]:
    try:
        scalar = isinstance(value, int | float | str)
        numbers = [float(value)] * 4 if scalar else [float(v) for v in value]  # type: ignore[arg-type,attr-defined]
    except (TypeError, ValueError) as exc:
        raise _bad_custom(f"margins_mm={value!r}") from exc
    if len(numbers) == 2:
        numbers = [numbers[0], numbers[1], numbers[0], numbers[1]]
    if len(numbers) != 4:
        raise _bad_custom(f"margins_mm needs 1, 2 or 4 numbers, got {len(numbers)}")
    return numbers[0], numbers[1], numbers[2], numbers[3]


def _from_mapping(spec: Mapping[str, Any]) -> Device:
    """A custom device from the configuration: ``{width_mm, height_mm[, margins_mm, name, colour]}``.

    ``base`` names a built-in device to start from, so ``{base: remarkable2, margins_mm: 12}`` works too.
    """
    known = {"name", "width_mm", "height_mm", "margins_mm", "margin_mm", "colour", "color", "base"}
    unknown = sorted(str(k) for k in spec if k not in known)
    if unknown:
        raise _bad_custom(f"unknown keys {unknown}; known: {sorted(known)}")
    base = get_device(str(spec["base"])) if spec.get("base") is not None else None
    width = spec.get("width_mm", base.width_mm if base else None)
    height = spec.get("height_mm", base.height_mm if base else None)
    if width is None or height is None:
        raise _bad_custom("width_mm and height_mm are required (or base: a device name)")
    margins = spec.get("margins_mm", spec.get("margin_mm", base.margin_mm if base else None))
    colour = spec.get("colour", spec.get("color", base.colour if base else False))
    name = spec.get("name") or (f"{base.name}-custom" if base else "custom")
    if not isinstance(colour, bool):
        raise _bad_custom(f"colour must be true or false, got {colour!r}")
    return Device.custom(width, height, margins, name=str(name), colour=colour)


def get_device(name: str | Mapping[str, Any] | Device) -> Device:
    """Look a device up by the name used in the configuration file, or build a custom one.

    Names are matched case-insensitively and with ``_``/space treated as ``-``, because people type
    "reMarkable 2" or "remarkable_paper_pro" into config files. A mapping (``width_mm``, ``height_mm``,
    optional ``margins_mm``, ``name``, ``colour``, ``base``) or a ``"WIDTHxHEIGHT"`` string in millimetres
    (``"150x200"``) makes a custom page; see :meth:`Device.custom`.
    """
    if isinstance(name, Device):
        return resolve_device(name)
    if isinstance(name, Mapping):
        return _from_mapping(name)
    size = _SIZE.match(str(name))
    if size:
        return Device.custom(float(size.group(1)), float(size.group(2)), name=f"{size.group(1)}x{size.group(2)}mm")
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    device = DEVICES.get(key) or DEVICES.get(key.replace("-", ""))
    if device is None:
        known = ", ".join(sorted(DEVICES))
        close = difflib.get_close_matches(key, sorted(DEVICES), n=1, cutoff=0.6)
        raise RenderError(
            f"The page size '{name}' is not one the daemon knows." + (f" Did you mean '{close[0]}'?" if close else ""),
            f"Use one of: {known}; or a custom size as WIDTHxHEIGHT in mm (120x170).",
        )
    return device


def resolve_device(device: Device | str | Mapping[str, Any]) -> Device:
    """Accept a name or a :class:`Device`, and reject geometry that cannot hold a page of text.

    A custom ``Device`` comes from code, not the config file, but a zero width or margins wider than the page
    would otherwise surface as an obscure layout exception deep inside reportlab.
    """
    dev = get_device(device) if isinstance(device, str | Mapping) else device
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
