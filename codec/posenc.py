"""Positional encoding of the pixel coordinates for the sine networks (Strümpler et al., ECCV'22).

    gamma(x, y) = (x, y, sin(f_0 x), sin(f_0 y), cos(f_0 x), cos(f_0 y), ..., cos(f_{L-1} y)),
    f_k = scale**k * pi

A non-octave base (``scale`` 1.4, Strümpler's choice) covers the spectrum densely. Measured on sun80
(/work/notes/rd-report.md, "Input encoding"): at 96x64 a 24x3 SIREN goes from 27.9 to 30.8 dB (float)
with L = 10, and +0.6-1.1 dB at equal bytes; octave bases (scale 2) give nothing at equal bytes.

Every decoder computes the same features in the same order, in float32: the frequencies are built by
repeated float64 multiplication (exact IEEE arithmetic in every language, unlike ``pow``), times pi,
rounded once to float32; then ``sin``/``cos`` of the float32 product ``coordinate * f_k``. Torch-free:
the numpy decoder imports this; the torch model calls :func:`frequencies_f32` and does the same sums.
"""

from __future__ import annotations

import math

import numpy as np

from codec.errors import ConfigError

MAX_FREQUENCIES = 32
"""Largest L a stream may ask for (f_max = scale^31 pi is far beyond any image's Nyquist rate)."""
SCALE_RANGE = (1.0, 4.0)
"""Allowed ``scale``: 1 < scale <= 4."""
DEFAULT_SCALE = 1.4


def check(frequencies: object, scale: object, error: type[Exception] = ConfigError) -> None:
    """``frequencies`` an int 0..MAX_FREQUENCIES and ``scale`` a finite number in (1, 4], or ``error``."""
    if (
        isinstance(frequencies, bool)
        or not isinstance(frequencies, int)
        or not 0 <= frequencies <= MAX_FREQUENCIES
    ):
        raise error(f"pe_frequencies {frequencies!r} is out of range: allowed 0..{MAX_FREQUENCIES}")
    lo, hi = SCALE_RANGE
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or not lo < scale <= hi
    ):
        raise error(f"pe_scale {scale!r} is out of range: allowed {lo:g} < pe_scale <= {hi:g}")


def encoded_dim(frequencies: int) -> int:
    """Input features after encoding: the two coordinates plus a sine and a cosine per axis and frequency."""
    return 2 + 4 * frequencies


def frequencies_f32(frequencies: int, scale: float) -> np.ndarray:
    """The angular frequencies f_k = scale^k * pi as float32 (float64 powers by repeated product)."""
    out, power = [], 1.0
    for _ in range(frequencies):
        out.append(power * math.pi)
        power *= float(scale)
    return np.array(out, dtype=np.float64).astype(np.float32)


def encode(coords: np.ndarray, frequencies: int, scale: float) -> np.ndarray:
    """(N, 2) float32 coordinates -> (N, 2 + 4L) float32 features (the coordinates when L = 0)."""
    xy = np.asarray(coords, dtype=np.float32)
    if frequencies == 0:
        return xy
    feats = [xy]
    for f in frequencies_f32(frequencies, scale):
        arg = xy * f
        feats += [np.sin(arg, dtype=np.float32), np.cos(arg, dtype=np.float32)]
    return np.concatenate(feats, axis=1)
