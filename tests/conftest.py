from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _browser import browser, page, served  # noqa: F401  (fixtures of the browser tests)
from _engines import engine, ray_cluster  # noqa: F401  (the engines of the job-lifecycle tests)

# One torch thread per test process: deterministic, and on a machine busy with other work two threads
# ran this suite's small fits 10-40x slower than one (tests/test_batched.py: 244 s against 20 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def photo_crop() -> np.ndarray:
    """A small real photograph crop (uint8 HxWx3), non-square (64 wide, 48 tall)."""
    from skimage import data

    img = data.astronaut()  # 512x512 RGB, ships inside scikit-image
    return np.ascontiguousarray(img[100:148:1, 180:244:1])


@pytest.fixture(scope="session")
def portrait_crop() -> np.ndarray:
    """A portrait (taller than wide) crop: 40 wide, 56 tall."""
    from skimage import data

    img = data.coffee()
    return np.ascontiguousarray(img[120:176, 200:240])
