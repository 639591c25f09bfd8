"""The classical codecs (codec/classical.py): fair settings, and the one search for a size."""

from __future__ import annotations

import numpy as np
import pytest

from codec.classical import CODECS, at_bpp, at_bytes, decode, encode
from codec.errors import ConfigError
from codec.metrics import psnr


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 180:244])


@pytest.mark.parametrize("codec", ["jpeg", "webp", "jpeg2000", "avif"])
def test_matched_bpp_search_lands_on_its_target(codec: str) -> None:
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[128:384, 128:384])
    r = at_bpp(img, codec, 1.0)
    assert 0.85 <= r["bpp"] <= 1.0, r
    assert r["psnr"] > 25


def test_jpeg_of_size_fits_the_budget(photo: np.ndarray) -> None:
    found = at_bytes(photo, "jpeg-progressive", 2000)
    data, q = found.data, int(found.quality)
    assert len(data) <= 2000 and (q == 100 or len(encode(photo, "jpeg-progressive", q + 1)) > 2000)
    assert found.fits and found.codec == "jpeg-progressive"


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_meets_a_byte_budget_and_decodes(codec: str, photo: np.ndarray) -> None:
    found = at_bytes(photo, codec, 1500)
    assert found.fits and len(found.data) <= 1500
    rgb = decode(found.data)
    assert rgb.shape == photo.shape and psnr(rgb, photo) > 18


@pytest.mark.parametrize("codec", ["jpeg", "jpeg2000"])
def test_an_impossible_budget_gives_the_smallest_file_and_says_so(codec: str, photo: np.ndarray) -> None:
    found = at_bytes(photo, codec, 10)
    assert not found.fits and len(found.data) > 10
    smallest = encode(photo, codec, 1) if codec == "jpeg" else encode(photo, codec, found.quality)
    assert found.data == smallest
    assert found.quality == (1 if codec == "jpeg" else pytest.approx(2000.0))


def test_bad_codec_and_quality_are_named(photo: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="codec 'gif' is not one of"):
        encode(photo, "gif", 50)
    with pytest.raises(ConfigError, match="webp quality 0 is out of range"):
        encode(photo, "webp", 0)
    with pytest.raises(ConfigError, match="compression ratio -1"):
        encode(photo, "jpeg2000", -1)
