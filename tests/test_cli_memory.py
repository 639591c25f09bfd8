"""``spinr encode --max-memory`` (issue 10/11): the CLI plans memory as the server does
(``codec.memory`` through ``codec.rate.plan_encode``): over the limit it trains on pixel batches and
still converges, or it refuses before training, naming the numbers and the option."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.cli import main
from codec.config import apply_overrides, preset
from codec.memory import GIB, MIN_BATCH, estimate
from codec.rate import plan_encode

TINY = ["--preset", "tiny", "--steps", "400", "--device", "cpu"]
SIZE = (128, 96)  # 12,288 pixels: room for a batch of at least MIN_BATCH below the whole image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    rgb = np.ascontiguousarray(data.astronaut()[60:252:2, 140:396:2])
    assert rgb.shape[1::-1] == SIZE
    path = tmp_path_factory.mktemp("mem") / "crop.png"
    Image.fromarray(rgb).save(path)
    return path


def half_batch_limit() -> float:
    """A limit in GiB under which the tiny preset's full batch does not fit but half of it does."""
    cfg = apply_overrides(preset("tiny"), {})
    pixels = SIZE[0] * SIZE[1]
    half = estimate(apply_overrides(preset("tiny"), {"batch_pixels": pixels // 2}), pixels).total
    assert half < estimate(cfg, pixels).total
    return half / GIB


def test_a_memory_cap_trains_on_pixel_batches_and_still_converges(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = half_batch_limit()
    planned = plan_encode(apply_overrides(preset("tiny"), {"max_memory": limit}), *SIZE)
    batch = planned.cfg.train.batch_pixels
    assert MIN_BATCH <= batch < SIZE[0] * SIZE[1] and abs(batch - SIZE[0] * SIZE[1] // 2) <= 2

    capsys.readouterr()
    assert (
        main(["encode", str(image), "-o", str(tmp_path / "b.spnr"), *TINY, "--max-memory", str(limit)]) == 0
    )
    out = capsys.readouterr()
    assert f"training on {batch} pixels per step to stay within the memory limit (--max-memory)" in out.err
    batched = float(re.search(r"PSNR ([0-9.]+) dB", out.out).group(1))  # type: ignore[union-attr]

    assert main(["encode", str(image), "-o", str(tmp_path / "f.spnr"), *TINY, "--json"]) == 0
    full = json.loads(capsys.readouterr().out)["psnr"]
    # Half the pixels per step: the same network converges as far as with every pixel (measured
    # 18.5 and 18.8 dB; 12.7 and 13.0 dB after 120 steps).
    assert batched > 16.0 and full > 16.0
    assert abs(batched - full) < 1.0, (batched, full)


def test_an_impossible_memory_cap_is_refused_naming_the_numbers(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.spnr"
    capsys.readouterr()
    assert main(["encode", str(image), "-o", str(out), *TINY, "-q", "--max-memory", "0.001"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    assert re.search(
        r"this encode needs 12288 pixels x width 16 x 4 layers, every pixel per step: about [0-9.]+ MiB; "
        r"the limit is 1\.0 MiB \(--max-memory\), which holds at most about 0 pixels at this width and "
        r"depth: use a smaller image, a smaller width or depth, or raise --max-memory",
        err,
    ), err
    # A batch the user chose that cannot fit names the largest that does.
    limit = half_batch_limit()
    argv = ["encode", str(image), "-o", str(out), *TINY, "-q", "--max-memory", str(limit)]
    assert main([*argv, "--batch-pixels", "12000"]) == 1
    assert re.search(r"batch_pixels of at most \d+ fits", capsys.readouterr().err)
    assert main(["encode", str(image), "-o", str(out), *TINY, "-q", "--max-memory", "-1"]) != 0
    assert "--max-memory: max_memory -1.0 is out of range: allowed 0 <= max_memory" in capsys.readouterr().err


def test_encode_help_lists_max_memory(capsys: pytest.CaptureFixture[str]) -> None:
    # Help texts with a literal % ("at least 90 %") once crashed argparse's help formatter.
    with pytest.raises(SystemExit) as exit_info:
        main(["encode", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert "--max-memory MAX_MEMORY memory the encode may use, in GiB" in out and "at least 90 %)" in out
