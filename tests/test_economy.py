"""Page economy: cropping, blank pages, legible downscaling within provider limits, compact encodings, token
estimates, and the benchmark's target."""

from __future__ import annotations

import importlib.util
import io
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image, ImageDraw

from eink_llm.backends import BackendSettings, Capabilities, LLMRequest, PageImage, create_backend
from eink_llm.backends.anthropic import CAPABILITIES as ANTHROPIC
from eink_llm.economy import (
    BLANK_PAGE_LONG_EDGE,
    MARGIN_PX,
    ink_mask,
    plan_pages,
    prepare_encoded_pages,
    prepare_pages,
    stroke_width,
)
from eink_llm.errors import InputTooLargeError
from eink_llm.image_tokens import estimate_image_tokens, openai_image_pricing, openai_patches
from tests.fakes import FakeLLMServer

ROOT = Path(__file__).resolve().parent.parent
PNG_ONLY = Capabilities(media_types=("image/png",), token_formula="anthropic")


def page(size: tuple[int, int] = (930, 1240), *, mode: str = "L") -> Image.Image:
    return Image.new(mode, size, 255 if mode == "L" else (255, 255, 255, 255))


def scribble(image: Image.Image, box: tuple[int, int, int, int], width: int, *, lines: int = 3) -> Image.Image:
    """Zig-zag 'writing' filling ``box`` with strokes ``width`` px wide."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    step = (bottom - top) / lines
    for line in range(lines):
        y0 = top + line * step + width
        points = [(x, y0 + (step * 0.6 if (x // 12) % 2 else 0)) for x in range(left + width, right - width, 12)]
        draw.line(points, fill=0, width=width, joint="curve")
    return image


def decoded(image: PageImage) -> Image.Image:
    result = Image.open(io.BytesIO(image.data))
    result.load()
    assert result.size == (image.width, image.height)
    assert Image.MIME[result.format or ""] == image.media_type
    return result.convert("L")


# --- token estimates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "size", "tokens"),
    [
        ("openai", (1024, 1024), 765),  # OpenAI's own worked examples
        ("openai", (2048, 4096), 1105),
        ("openai", (1243, 1657), 765),  # a 3:4 page
        ("openai", (512, 512), 85),  # fits 512 × 512: sent at detail low
        ("openai-high", (512, 512), 255),  # detail configured: always tiles
        ("openai", (513, 100), 425),
        ("openai-low", (4000, 4000), 85),
        ("openai-patches", (1024, 1024), 1024),  # no model: one token a patch
        ("anthropic", (1000, 1000), 1334),
        ("anthropic", (951, 1268), 1608),  # the largest 3:4 image Anthropic does not shrink
        ("anthropic", (3000, 4000), 1614),  # shrunk by Anthropic first, to about 1.2 megapixels
        ("gemini", (384, 384), 258),
        ("gemini", (385, 100), 258),
        ("gemini", (1000, 1000), 1032),
        ("gemini", (6000, 6000), 258 * 16),  # fitted into 3072 first
        ("ollama", (784, 1), 1),
        ("someplugin", (784, 784), 784),
        ("openai", (0, 100), 0),
    ],
)
def test_estimate_image_tokens(backend: str, size: tuple[int, int], tokens: int) -> None:
    assert estimate_image_tokens(backend, *size) == tokens


@pytest.mark.parametrize(
    ("size", "patches"),
    [
        ((1024, 1024), 32 * 32),  # OpenAI's worked examples
        ((1800, 2400), 33 * 44),  # 57 × 75 = 4275 patches > 1536: shrunk to 1056 × 1408
        ((2048, 768), 64 * 24),  # exactly 1536: kept
        ((1600, 1600), 39 * 39),  # 2500 > 1536: shrunk to 1248 × 1248
        ((33, 1), 2),  # a patch may stick out of the image
        ((0, 5), 0),
    ],
)
def test_openai_patches(size: tuple[int, int], patches: int) -> None:
    assert openai_patches(*size) == patches


@pytest.mark.parametrize(
    ("model", "size", "tokens"),
    [
        ("gpt-4.1-mini", (1024, 1024), 1659),  # 1024 patches × 1.62 = 1658.9
        ("gpt-4.1-mini", (1800, 2400), 2353),  # 1452 × 1.62 = 2352.2
        ("gpt-4.1-nano-2025-04-14", (1800, 2400), 3572),  # 1452 × 2.46 = 3571.9
        ("o4-mini", (100, 50), 14),  # 4 × 2 patches × 1.72 = 13.8
        ("gpt-5-mini", (2048, 768), 2489),  # 1536 × 1.62 = 2488.3
        ("openai/gpt-5-nano", (512, 512), 630),  # 256 × 2.46 = 629.8, whatever the detail
        ("gpt-4o", (1024, 1024), 765),
        ("gpt-4o-mini-2024-07-18", (1024, 1024), 2833 + 4 * 5667),
        ("gpt-4o-mini", (400, 300), 2833),  # fits 512 × 512: low detail, the base price
        ("gpt-5", (1024, 1024), 70 + 4 * 140),
        ("gpt-5-chat-latest", (500, 500), 70),
        ("o3", (1024, 1024), 75 + 4 * 150),
        ("ft:gpt-4.1:acme::abc123", (1024, 1024), 765),
        ("gpt-5.2", (1024, 1024), 765),  # not in OpenAI's tables: priced like gpt-4o
        (None, (1024, 1024), 765),
    ],
)
def test_openai_estimates_are_model_aware(model: str | None, size: tuple[int, int], tokens: int) -> None:
    assert estimate_image_tokens("openai", *size, model=model) == tokens


def test_openai_model_names() -> None:
    assert openai_image_pricing("gpt-4o-mini") == openai_image_pricing("gpt-4o-mini-2024-07-18")
    assert openai_image_pricing("gpt-4o-mini") != openai_image_pricing("gpt-4o")  # the longest name wins
    pricing = openai_image_pricing(" OpenAI/GPT-4.1-Mini ")
    assert pricing is not None and pricing.billing == "patches" and pricing.multiplier == 1.62
    for other in ("llava", "qwen2.5vl:7b", "gpt-5.2", "gpt-4o2", "", None):
        assert openai_image_pricing(other) is None, other


def test_estimates_follow_capabilities() -> None:
    openai = create_backend(BackendSettings("openai", model="m"))
    low = create_backend(BackendSettings("openai", model="m", extra={"detail": "low"}))
    ollama = create_backend(BackendSettings("ollama", model="m"))
    assert estimate_image_tokens(openai.capabilities, 1024, 1024) == 765
    assert estimate_image_tokens(low.capabilities, 1024, 1024) == 85
    assert estimate_image_tokens(ANTHROPIC, 1000, 1000) == 1334
    # Ollama's models see at most ~1.2 megapixels, so a huge image costs no more than that.
    assert estimate_image_tokens(ollama.capabilities, 4000, 4000) == math.ceil(1_200_000 / 784)
    # The model decides how OpenAI counts: tiles (gpt-4o-mini at its own prices) or patches (gpt-4.1-mini).
    mini = create_backend(BackendSettings("openai", model="gpt-4o-mini"))
    patches = create_backend(BackendSettings("openai", model="gpt-4.1-mini", extra={"detail": "high"}))
    assert estimate_image_tokens(mini.capabilities, 1024, 1024) == 2833 + 4 * 5667
    assert patches.capabilities.token_formula == "openai-patches"
    assert estimate_image_tokens(patches.capabilities, 1024, 1024) == 1659
    assert patches.capabilities.recommended_max_pixels == 1536 * 32 * 32
    # A compatible server with a model OpenAI does not sell: estimated as OpenAI would bill it, detail unchanged.
    local = create_backend(BackendSettings("openai", base_url="http://127.0.0.1:9/v1", model="llava"))
    assert local.capabilities.token_formula == "openai-high"
    assert estimate_image_tokens(local.capabilities, 512, 512) == 255
    for backend in (openai, low, ollama, mini, patches, local):
        backend.close()


# --- analysis ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [2, 3, 5, 8])
def test_stroke_width_is_estimated(width: int) -> None:
    image = scribble(page((600, 400)), (20, 20, 580, 380), width, lines=5)
    estimate = stroke_width(ink_mask(image))
    assert 0.75 * width <= estimate <= 1.15 * width, estimate


def test_light_template_lines_are_not_ink() -> None:
    ruled = page()
    draw = ImageDraw.Draw(ruled)
    for y in range(100, 1200, 50):
        draw.line([(40, y), (890, y)], fill=200, width=1)
    assert ink_mask(ruled).getbbox() is None


# --- the economy ------------------------------------------------------------------------------------------------


def test_crops_to_the_ink_with_a_margin() -> None:
    image = scribble(page(), (300, 100, 600, 190), 2)
    ink = ink_mask(image).getbbox()
    assert ink is not None
    [prepared] = plan_pages([image], PNG_ONLY)
    assert prepared.crop == (ink[0] - MARGIN_PX, ink[1] - MARGIN_PX, ink[2] + MARGIN_PX, ink[3] + MARGIN_PX)
    assert prepared.image is not None and prepared.scale == 1.0  # 2-px strokes: no room to shrink
    sent = decoded(prepared.image)
    assert sent.size == (ink[2] - ink[0] + 2 * MARGIN_PX, ink[3] - ink[1] + 2 * MARGIN_PX)
    assert ink_mask(sent).getbbox() == (MARGIN_PX, MARGIN_PX, sent.width - MARGIN_PX, sent.height - MARGIN_PX)
    [edge] = plan_pages([scribble(page(), (0, 0, 200, 100), 2)], PNG_ONLY)
    assert edge.crop[:2] == (0, 0)  # the margin stops at the page's edge


def test_blank_pages_are_dropped_but_never_all() -> None:
    written = scribble(page(), (100, 100, 800, 300), 3)
    speck = page()
    speck.putpixel((500, 500), 0)  # a stray tap of the pen
    plans = plan_pages([page(), written, speck], PNG_ONLY)
    assert [p.blank for p in plans] == [True, False, True]
    assert len(prepare_pages([page(), written, speck], PNG_ONLY)) == 1

    all_blank = plan_pages([page(), speck], PNG_ONLY)
    assert [p.image is not None for p in all_blank] == [True, False]
    first = all_blank[0].image
    assert first is not None and max(first.width, first.height) <= BLANK_PAGE_LONG_EDGE
    assert prepare_pages([], PNG_ONLY) == ()


def test_thick_strokes_are_shrunk_to_the_legibility_floor_and_no_further() -> None:
    image = scribble(page(), (60, 60, 870, 1180), 8, lines=14)
    [prepared] = plan_pages([image], PNG_ONLY)
    assert prepared.image is not None
    assert 0.2 < prepared.scale < 0.35  # ~8 px strokes → ~2 px
    sent = decoded(prepared.image)
    assert stroke_width(ink_mask(sent)) >= 1.7
    [thin] = plan_pages([scribble(page(), (60, 60, 870, 1180), 1, lines=14)], PNG_ONLY)
    assert thin.scale == 1.0  # thin strokes: never shrunk (and never enlarged)


def test_tile_formulas_pick_the_largest_scale_of_the_cheapest_size() -> None:
    image = scribble(page(), (40, 40, 600, 450), 8, lines=4)  # fits one 512-px tile once shrunk a little
    high = Capabilities(media_types=("image/png",), token_formula="openai-high")
    [prepared] = plan_pages([image], high)
    assert prepared.image is not None and prepared.tokens == 255
    assert 500 <= max(prepared.image.width, prepared.image.height) <= 512
    # The openai backend's default sends such a page at detail low: 85 tokens for the same pixels.
    [low] = plan_pages([image], replace(high, token_formula="openai-tiles"))
    assert low.image is not None and low.tokens == 85 and low.image.width == prepared.image.width
    # A page that cannot shrink into 512 × 512 without thinning its strokes below the floor stays at high detail.
    wide = scribble(page(), (40, 40, 800, 450), 2, lines=4)
    [thin] = plan_pages([wide], replace(high, token_formula="openai-tiles"))
    assert thin.image is not None and thin.scale == 1.0 and thin.tokens == 85 + 2 * 170


def test_patch_formula_pays_for_cropping_and_the_legibility_floor_alone() -> None:
    backend = create_backend(BackendSettings("openai", model="gpt-4.1-mini"))
    caps = backend.capabilities
    backend.close()
    image = scribble(page(), (100, 100, 800, 300), 2)  # thin pen: never shrunk, so only the crop saves
    [prepared] = plan_pages([image], caps)
    assert prepared.image is not None and prepared.scale == 1.0
    width, height = prepared.image.width, prepared.image.height
    assert prepared.tokens == math.ceil(math.ceil(width / 32) * math.ceil(height / 32) * 1.62)
    assert prepared.tokens < estimate_image_tokens(caps, *image.size) / 4
    [thick] = plan_pages([scribble(page(), (60, 60, 870, 1180), 8, lines=14)], caps)
    assert thick.image is not None and 0.2 < thick.scale < 0.35  # down to the floor: patches follow the area


# --- detail travels with the page to the OpenAI API ------------------------------------------------------------


def openai_request_details(server: FakeLLMServer, model: str, images: list[Image.Image], **extra: object) -> list[str]:
    """Prepare ``images`` for the openai backend with ``model``, send them to the fake OpenAI server, and return
    the ``detail`` of each image part in the JSON it received."""
    backend = create_backend(BackendSettings("openai", base_url=server.base_url, model=model, extra=dict(extra)))
    try:
        pages = prepare_pages(images, backend.capabilities)
        backend.complete(LLMRequest(system_prompt="", pages=pages))
    finally:
        backend.close()
    parts = server.last_request.body["messages"][-1]["content"]
    return [part["image_url"]["detail"] for part in parts if part["type"] == "image_url"]


def test_small_pages_go_to_openai_at_low_detail_full_pages_do_not() -> None:
    small = scribble(page(), (40, 40, 600, 450), 8, lines=4)  # shrinks into 512 × 512 with strokes ≥ 2 px
    full = scribble(page(), (20, 20, 910, 1220), 3, lines=24)
    with FakeLLMServer() as server:
        assert openai_request_details(server, "gpt-4o", [small, full]) == ["low", "auto"]
        [sent_small, sent_full] = server.last_request.images()
        assert max(sent_small.size) <= 512 < max(sent_full.size)
        assert server.last_request.reply["usage"]["prompt_tokens"] < 900  # the fake bills low detail at 85
        # The user's own setting wins; patch-billed models gain nothing from low detail.
        assert openai_request_details(server, "gpt-4o", [small, full], detail="high") == ["high", "high"]
        assert openai_request_details(server, "gpt-4o", [small], detail="auto") == ["auto"]
        assert openai_request_details(server, "gpt-4.1-mini", [small, full]) == ["auto", "auto"]
        assert not server.errors


def test_hard_limits_beat_legibility() -> None:
    caps = Capabilities(media_types=("image/png",), max_long_edge_px=300, token_formula="anthropic")
    [prepared] = prepare_pages([scribble(page(), (10, 10, 920, 1230), 2, lines=20)], caps)
    assert max(prepared.width, prepared.height) <= 300
    many = [scribble(page((2400, 300)), (10, 10, 2390, 290), 2, lines=2)] * 21
    prepared_many = prepare_pages(many, ANTHROPIC)
    assert len(prepared_many) == 21
    assert all(max(p.width, p.height) <= 2000 for p in prepared_many)


def test_byte_limits_are_met_as_the_provider_measures_them() -> None:
    caps = Capabilities(
        media_types=("image/png",), max_image_bytes=4000, bytes_measured="base64", token_formula="anthropic"
    )
    image = scribble(page(), (10, 10, 920, 1230), 2, lines=30)
    [prepared] = prepare_pages([image], caps)
    assert caps.measured_size(len(prepared.data)) <= 4000
    total = Capabilities(media_types=("image/png",), max_request_bytes=20000, token_formula="anthropic")
    pages = prepare_pages([image, image, image], total)
    assert sum(len(p.data) for p in pages) <= 20000


@pytest.mark.parametrize(
    ("media_types", "allowed"),
    [
        (("image/jpeg",), {"image/jpeg"}),
        (("image/png",), {"image/png"}),
        (("image/png", "image/webp"), {"image/png", "image/webp"}),
        (("image/webp",), {"image/webp"}),
    ],
)
def test_encodes_only_what_the_provider_accepts(media_types: tuple[str, ...], allowed: set[str]) -> None:
    caps = Capabilities(media_types=media_types, token_formula="anthropic")
    [prepared] = prepare_pages([scribble(page(), (100, 100, 800, 500), 4)], caps)
    assert prepared.media_type in allowed
    assert ink_mask(decoded(prepared)).getbbox() is not None


def test_compact_encoding_beats_a_plain_grey_png() -> None:
    # Anti-aliased, like a rendered PDF: drawn at 3x and reduced.
    image = scribble(page((2790, 3720)), (180, 180, 2610, 3540), 9, lines=14).reduce(3)
    [prepared] = plan_pages([image], PNG_ONLY)
    assert prepared.image is not None
    region = image.crop(prepared.crop).resize((prepared.image.width, prepared.image.height), Image.Resampling.LANCZOS)
    plain = io.BytesIO()
    region.save(plain, "PNG", optimize=True)
    assert len(prepared.image.data) < 0.7 * len(plain.getvalue())


def test_colour_and_transparent_pages_are_read_as_grey() -> None:
    rgba = page(mode="RGBA")
    ImageDraw.Draw(rgba).line([(100, 100), (700, 400)], fill=(0, 0, 200, 255), width=6)
    transparent = Image.new("RGBA", (400, 400), (0, 0, 0, 0))  # transparent black is paper, not ink
    plans = plan_pages([rgba, transparent], PNG_ONLY)
    assert [p.blank for p in plans] == [False, True]


def test_context_pages_are_sent_whole_with_their_faded_content() -> None:
    faded = page((600, 800))
    ImageDraw.Draw(faded).rectangle((100, 100, 500, 140), fill=200)  # our earlier answer, faded: not ink
    marked = scribble(faded.copy(), (120, 300, 400, 360), 3)
    for image in (faded, marked):  # with or without new ink on it
        [plan] = plan_pages([image], PNG_ONLY, crop_to_ink=False)
        assert plan.image is not None and not plan.blank and plan.crop == (0, 0, 600, 800)
        sent = decoded(plan.image)  # scaled to the legibility floor of the new ink, if there is any
        assert abs(sent.width / sent.height - 600 / 800) < 0.01
        middle = sent.getpixel((sent.width // 2, round(120 * plan.scale)))
        assert isinstance(middle, int) and 190 <= middle <= 215  # faded, still visible
    [cropped] = plan_pages([marked], PNG_ONLY)
    assert cropped.crop != (0, 0, 600, 800)  # the default crops to the ink
    assert prepare_pages([faded], PNG_ONLY, crop_to_ink=False)[0].height == 800


def test_too_many_pages_for_the_provider() -> None:
    caps = Capabilities(media_types=("image/png",), max_images=2)
    written = scribble(page((300, 300)), (10, 10, 290, 290), 3)
    with pytest.raises(InputTooLargeError) as caught:
        prepare_pages([written] * 3, caps)
    assert "at most 2" in caught.value.todo
    assert len(prepare_pages([written, page((300, 300)), written], caps)) == 2  # blank ones do not count


# --- the benchmark ----------------------------------------------------------------------------------------------


def load_benchmark() -> ModuleType:
    path = ROOT / "benchmarks" / "page_economy.py"
    spec = importlib.util.spec_from_file_location("page_economy_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_benchmark_meets_its_target() -> None:
    bench = load_benchmark()
    rows = bench.measure(supersample=2)
    # Its own verdict: nothing over a limit, never worse than the naive page nor than the best strictly legible
    # scale found by its own scan, and 2× on the median page wherever a legible pen allows it.
    failures, notes = bench.verdict(rows)
    assert failures == []
    # The pages with grey ink (issue 19) are judged by the same per-page verdict; the rest is about black ink.
    grey = [row for row in rows if row.group == "grey"]
    assert len(grey) == 6 * len(bench.BACKENDS) and all(row.ours_size for row in grey)
    rows = [row for row in rows if row.group == "black"]
    assert all(row.ours_bytes < row.naive_bytes / 2 for row in rows if row.ours_size)
    assert set(bench.BACKENDS) == {
        "openai gpt-4o",
        "openai gpt-4o, min_stroke_px 1",
        "openai gpt-4.1-mini",
        "anthropic",
        "gemini",
        "ollama",
    }
    for backend in ("openai gpt-4.1-mini", "anthropic", "gemini", "ollama", "openai gpt-4o, min_stroke_px 1"):
        assert bench.median_ratio(rows, backend) >= 2.0, backend
    # Tile-billed OpenAI models already shrink any page to 768 px on its short side, so a full page costs the same
    # 765 tokens either way (docs/page-economy.md has the arithmetic); the savings come from partial and blank pages.
    # That is the one backend whose legibility floor rules 2× out, and the benchmark says so.
    assert [note.split(":")[0] for note in notes] == ["openai gpt-4o"]
    openai = [row for row in rows if row.backend == "openai gpt-4o"]
    assert sum(r.ours_tokens for r in openai) <= 0.75 * sum(r.naive_tokens for r in openai)
    assert statistics.median(r.ratio for r in openai if not math.isinf(r.ratio)) >= 1.0
    # At the same tokens, gpt-4o sees every page of ours at least as sharp as it sees the naive page.
    assert all(r.ours_pen_px >= r.naive_pen_px for r in openai if r.ours_size)
    # Legible: pens stay about 2 px wide (less the tile-snapping slack); the 2-px pen (1.3 px at 150 dpi) is never
    # shrunk at all; with min_stroke_px 1, about 1 px.
    for row in rows:
        if row.ours_size:
            thinnest = 0.9 if "min_stroke_px 1" in row.backend else 1.3 if "2 px pen" in row.page else 1.7
            assert row.ours_pen_px >= thinnest, row


def test_encoded_pages_as_the_reader_makes_them() -> None:
    written = scribble(page(), (100, 100, 800, 300), 3)
    encoded = []
    for image in (page(), written):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        encoded.append(PageImage(buffer.getvalue(), "image/png", image.width, image.height))
    [prepared] = prepare_encoded_pages(encoded, PNG_ONLY)
    assert prepared.height < 300 and ink_mask(decoded(prepared)).getbbox() is not None
    broken = (PageImage(b"not an image", "image/png", 1, 1),)
    assert prepare_encoded_pages(broken, PNG_ONLY) == broken
