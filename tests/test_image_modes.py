"""Every Pillow mode becomes the right 8-bit RGB (issue 11, item 10: 16-bit grayscale trained as white).

Each case goes through a real file in a format that keeps the mode where one exists (``load_image``
on the bytes, as an upload is read), and through :func:`rgb_from_pil` in memory otherwise."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from codec.image import load_image, rgb_from_pil

GRAY16 = np.array([[0, 128, 129, 257, 32768, 65407, 65535]], dtype=np.uint16)
GRAY16_AS_8 = [[0, 0, 1, 1, 128, 255, 255]]  # round(v / 257)
COLOURS = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [255, 255, 255], [0, 0, 0], [200, 100, 50]]],
    dtype=np.uint8,
)


def saved(img: Image.Image, fmt: str, expect_mode: str | None = None, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    data = buf.getvalue()
    reopened = Image.open(io.BytesIO(data)).mode
    assert reopened == (expect_mode or img.mode), f"{fmt} reopened as {reopened}"
    return data


def gray(rgb: np.ndarray) -> list[list[int]]:
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0].tolist()


# -- 16-bit, 32-bit integer and float ----------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "mode", "expect"),
    [
        ("PNG", "I;16", "I;16"),
        ("TIFF", "I;16", "I;16"),
        ("TIFF", "I;16B", "I;16B"),
        ("JPEG2000", "I;16", "I;16"),
    ],
)
def test_16_bit_grayscale_file_scales_instead_of_clipping(fmt: str, mode: str, expect: str) -> None:
    dtype = ">u2" if mode == "I;16B" else "<u2"
    img = Image.frombytes(mode, (GRAY16.shape[1], 1), GRAY16.astype(dtype).tobytes())
    params = {"irreversible": False} if fmt == "JPEG2000" else {}
    rgb = load_image(saved(img, fmt, expect, **params))
    assert gray(rgb) == GRAY16_AS_8


def test_mid_grey_16_bit_png_is_mid_grey_not_white() -> None:
    # The reported failure: a 16-bit photograph came out as pure white (PSNR 5.2 dB).
    truth = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint16)
    rgb = load_image(saved(Image.fromarray(truth * 257), "PNG", "I;16"))
    assert (rgb[..., 0] == truth).all() and rgb.mean() == pytest.approx(truth.mean())


@pytest.mark.parametrize("mode", ["I;16L", "I;16N", "I;16B"])
def test_16_bit_modes_in_memory(mode: str) -> None:
    img = Image.new(mode, (GRAY16.shape[1], 1))
    for x, v in enumerate(GRAY16[0]):
        img.putpixel((x, 0), int(v))
    assert gray(rgb_from_pil(img)) == GRAY16_AS_8


def test_16_bit_pgm_opens_as_I_and_scales() -> None:
    data = b"P5\n7 1\n65535\n" + GRAY16.astype(">u2").tobytes()
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert gray(load_image(data)) == GRAY16_AS_8
    ten_bit = b"P2\n3 1\n1023\n0 512 1023\n"  # Pillow rescales maxval 1023 to 0..65535
    assert gray(load_image(ten_bit)) == [[0, 128, 255]]


def test_32_bit_integer_tiff_clips_to_the_16_bit_range() -> None:
    values = np.array([[-5, 0, 257, 32768, 65535, 70000, 2**31 - 1]], dtype=np.int32)
    rgb = load_image(saved(Image.fromarray(values), "TIFF", "I"))
    assert gray(rgb) == [[0, 0, 1, 128, 255, 255, 255]]


@pytest.mark.parametrize(("fmt", "expect"), [("TIFF", "F"), ("PPM", "F")])
def test_float_image_maps_0_to_1_onto_0_to_255(fmt: str, expect: str) -> None:
    values = np.array([[0.0, 0.25, 0.5, 1.0, 2.0, -1.0, np.nan, np.inf]], dtype=np.float32)
    rgb = load_image(saved(Image.fromarray(values), fmt, expect))
    assert gray(rgb) == [[0, 64, 128, 255, 255, 0, 0, 255]]


# -- 8-bit modes -----------------------------------------------------------------------------
def test_bilevel_and_grayscale_files() -> None:
    bits = Image.fromarray(np.array([[0, 255, 255, 0]], dtype=np.uint8)).convert("1")
    assert gray(load_image(saved(bits, "PNG"))) == [[0, 255, 255, 0]]
    assert gray(load_image(saved(bits, "BMP"))) == [[0, 255, 255, 0]]
    levels = np.array([[0, 1, 127, 128, 254, 255]], dtype=np.uint8)
    assert gray(load_image(saved(Image.fromarray(levels), "PNG"))) == levels.tolist()
    assert gray(load_image(saved(Image.fromarray(levels), "PPM"))) == levels.tolist()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM", "BMP"])
def test_rgb_files_are_exact(fmt: str) -> None:
    assert (load_image(saved(Image.fromarray(COLOURS), fmt)) == COLOURS).all()


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "TIFF"])
def test_palette_files_look_up_their_colours(fmt: str) -> None:
    img = Image.fromarray(COLOURS).quantize(
        colors=8, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    assert (load_image(saved(img, fmt, "P")) == COLOURS).all()


def test_palette_with_a_transparent_index_shows_white_there() -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((1, 0), 1)
    rgb = load_image(saved(img, "PNG", transparency=1))
    assert rgb.tolist() == [[[255, 0, 0], [255, 255, 255]]]


def test_grayscale_and_rgb_with_a_transparent_colour_show_white_there() -> None:
    l_img = Image.fromarray(np.array([[50, 60]], dtype=np.uint8))
    assert gray(load_image(saved(l_img, "PNG", transparency=50))) == [[255, 60]]
    rgb_img = Image.fromarray(COLOURS[:, :2])
    assert load_image(saved(rgb_img, "PNG", transparency=(255, 0, 0))).tolist() == [
        [[255, 255, 255], [0, 255, 0]]
    ]


ALPHA = [0, 128, 255]
GREY_OVER_WHITE = [[255, 177, 100]]  # 100 with alpha 0, 128, 255 over white: round(100a/255 + 255(1 - a/255))


def _la() -> Image.Image:
    return Image.fromarray(np.array([[[100, a] for a in ALPHA]], dtype=np.uint8), mode="LA")


def _rgba() -> Image.Image:
    return Image.fromarray(np.array([[[100, 100, 100, a] for a in ALPHA]], dtype=np.uint8), mode="RGBA")


@pytest.mark.parametrize(
    ("make", "fmt"),
    [(_la, "PNG"), (_la, "TIFF"), (_rgba, "PNG"), (_rgba, "TIFF"), (_rgba, "WEBP")],
)
def test_alpha_files_are_composited_over_white(make: Callable[[], Image.Image], fmt: str) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    out = np.asarray(gray(load_image(saved(make(), fmt, **params))))
    assert np.abs(out - GREY_OVER_WHITE).max() <= 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: _la().convert("La"),
        lambda: _rgba().convert("RGBa"),
        lambda: _rgba().convert("RGB").quantize(colors=4).convert("PA"),
    ],
    ids=["La", "RGBa", "PA"],
)
def test_premultiplied_and_palette_alpha_modes(make: Callable[[], Image.Image]) -> None:
    img = make()
    if img.mode == "PA":  # quantize dropped the alpha: put it back on the palette image
        img.putalpha(Image.fromarray(np.array([ALPHA], dtype=np.uint8)))
    out = np.asarray(gray(rgb_from_pil(img)))
    assert np.abs(out - GREY_OVER_WHITE).max() <= 2


def test_pa_tiff_file() -> None:
    img = Image.new("PA", (3, 1))
    img.putpalette([100, 100, 100] * 256)
    img.putalpha(Image.fromarray(np.array([ALPHA], dtype=np.uint8)))
    out = np.asarray(gray(load_image(saved(img, "TIFF"))))
    assert np.abs(out - GREY_OVER_WHITE).max() <= 1


def test_cmyk_files() -> None:
    cmyk = Image.new("CMYK", (4, 1))
    for x, v in enumerate([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 128, 255, 0)]):
        cmyk.putpixel((x, 0), v)
    expect = [[[255, 255, 255], [0, 255, 255], [0, 0, 0], [255, 127, 0]]]
    assert load_image(saved(cmyk, "TIFF")).tolist() == expect
    jpeg = np.asarray(
        load_image(saved(cmyk.resize((32, 8), Image.Resampling.NEAREST), "JPEG", quality=100)), dtype=int
    )
    assert np.abs(jpeg[4, ::8] - np.asarray(expect[0])).max() <= 6


@pytest.mark.parametrize(("mode", "fmt", "tol"), [("YCbCr", "TIFF", 2), ("HSV", None, 1), ("RGBX", None, 0)])
def test_other_colour_spaces_round_trip(mode: str, fmt: str | None, tol: int) -> None:
    img = Image.fromarray(COLOURS).convert(mode)
    rgb = load_image(saved(img, fmt)) if fmt else rgb_from_pil(img)
    assert np.abs(rgb.astype(int) - COLOURS).max() <= tol


def test_lab_tiff_converts_through_the_colour_space() -> None:
    to_lab = ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    lab = ImageCms.applyTransform(Image.fromarray(COLOURS), to_lab)
    assert lab is not None
    rgb = load_image(saved(lab, "TIFF"))
    assert np.abs(rgb.astype(int) - COLOURS).max() <= 25  # 8-bit Lab quantisation of saturated primaries
    assert np.abs(rgb.astype(int) - COLOURS)[0, 3:].max() <= 2  # greys and the mixed colour


def test_large_pngs_are_written_fast_and_still_lossless(tmp_path: Path) -> None:
    """Above FAST_PNG_PIXELS the PNG is written at zlib level 1: same pixels, no smaller a file."""
    from codec.image import FAST_PNG_PIXELS, load_image, png_bytes, save_png

    rng = np.random.default_rng(0)
    side = int(FAST_PNG_PIXELS**0.5) + 1
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    big = (ramp[None, :, None] + rng.integers(0, 4, (side, side, 3))).clip(0, 255).astype(np.uint8)
    save_png(tmp_path / "big.png", big)
    assert np.array_equal(load_image(tmp_path / "big.png"), big)
    small = big[:64, :64]
    assert np.array_equal(load_image(png_bytes(small)), small)
    fast = png_bytes(big)
    slow = io.BytesIO()
    Image.fromarray(big).save(slow, format="PNG")
    assert len(fast) >= len(slow.getvalue())  # level 1 never beats level 6 on this ramp
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fast))), big)
