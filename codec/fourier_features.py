"""FourierNet's fixed Gaussian projection B, computed in one place for the torch model and the numpy decoder.

B never travels: the header holds ``mapping_size``, ``sigma`` and ``b_seed``, and both sides regenerate
B from numpy's PCG64, so they agree exactly and neither depends on torch's random generator. No torch
here: a decoder-only install imports this module.
"""

from __future__ import annotations

import numpy as np


def b_matrix(mapping_size: int, sigma: float, seed: int) -> np.ndarray:
    """The (mapping_size, 2) float32 matrix of N(0, sigma^2) draws from PCG64 seeded by ``seed``."""
    gen = np.random.Generator(np.random.PCG64(seed))
    return (gen.standard_normal((mapping_size, 2)) * sigma).astype(np.float32)
