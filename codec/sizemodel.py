"""Size model: from (image size, byte target) to a network, before any training.

The rate controller (:mod:`codec.rate`) asks here which SIREN or SPINR to train for a target of T bytes,
trains it, then sets the quantization so the file lands in [0.9, 1.0] x T. Fitted on sun80 (never on
the test sets; /work/notes/rd-report.md, "Architecture per rate" and "PE at 192x128"):

- **≈ 6 coded bits per parameter is the optimum at every rate** (5 → 6 bits buys 0.7-1.0 dB for +19 %
  bytes, 6 → 7 only 0.2-0.3 dB for +16 %, less than growing the network by the same bytes): the
  network gets ``P = 8 (T - overhead) / 6`` parameters;
- **3 hidden layers** of equal width;
- **positional encoding** with Strümpler's base 1.4 and L frequencies such that the highest is 0.65 x
  the short side's Nyquist rate at 1 bpp, and two more (fewer) per doubling (halving) of the rate
  (best L at 192x128 measured 10 / 12 / 14 at 0.7 / 1.0 / 1.3 bpp).

Torch-free: the CLI and the server plan (and show) the network before importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codec import posenc
from codec.errors import ConfigError

BITS_PER_PARAM = 6.0
"""Coded bits per parameter at the RD optimum (sensitivity-allocated steps, sequential quantization)."""
HIDDEN = 3
"""Hidden layers at every rate."""
PE_SCALE = posenc.DEFAULT_SCALE
PE_NYQUIST_SHARE = 0.65
"""The highest encoding frequency at 1 bpp, as a share of the Nyquist rate of the image's short side."""
PE_PER_OCTAVE = 2.0
"""Frequencies added per doubling of the rate."""
MAX_PE = 16
MAX_INPUT_SHARE = 0.45
"""The encoded input layer may take at most this share of the parameters (the measured best networks
spend 35-44 % there); at small budgets frequencies go before width does."""
MIN_WIDTH = 4
MAX_WIDTH = 512
HEADER_BYTES = 32
"""Format v2 header packet of a SIREN/SPINR stream with its stage PSNRs (docs/FORMAT.md)."""
PACKET_BYTES = 12
"""Packet framing of a unit: magic, type, stream id, seq, unit, length, CRC-32."""
TENSOR_BYTES = 5
"""Per tensor: its bfloat16 step and its entropy model's descriptor."""
MODELS = ("siren", "spinr")
SPINR_JOINT = 0.8
"""SPINR's recipe at these depths: staged 20 % of the steps, joint 80 % (rd-report, "SPINR": every
stage then adds 2.7-2.8 dB, the final prefix is within 0.3 dB of SIREN at equal bytes)."""


@dataclass(frozen=True)
class Plan:
    """The network the size model chose."""

    model: str
    width: int
    hidden_layers: int
    pe_frequencies: int
    pe_scale: float
    params: int
    target_bytes: int

    @property
    def options(self) -> dict[str, float | int]:
        """The model options of the plan: the encoding, and SPINR's joint phase."""
        out: dict[str, float | int] = {"pe_frequencies": self.pe_frequencies, "pe_scale": self.pe_scale}
        if self.model == "spinr":
            out["joint"] = SPINR_JOINT
        return out

    def describe(self) -> str:
        pe = f", positional encoding L={self.pe_frequencies}" if self.pe_frequencies else ""
        return f"{self.model} {self.width} wide x {self.hidden_layers} hidden{pe} ({self.params} parameters)"


def pe_frequencies_for(width_px: int, height_px: int, bpp: float) -> int:
    """L whose highest frequency 1.4^(L-1) pi is PE_NYQUIST_SHARE of the short side's Nyquist rate
    (pi n / 2 on [-1, 1]) at 1 bpp, PE_PER_OCTAVE more per doubling of the rate; 0..MAX_PE."""
    top = PE_NYQUIST_SHARE * min(width_px, height_px) / 2
    n = round(math.log(max(top, 1.0)) / math.log(PE_SCALE)) + 1
    n += round(PE_PER_OCTAVE * math.log2(max(bpp, 1e-3)))
    return max(0, min(MAX_PE, n))


def params_of(model: str, width: int, hidden: int, pe_frequencies: int) -> int:
    """Parameters of a SIREN, or of a per-stage-head SPINR (a 3-channel head per stage)."""
    trunk = posenc.encoded_dim(pe_frequencies) * width + width + hidden * (width * width + width)
    heads = (hidden + 1 if model == "spinr" else 1) * (3 * width + 3)
    return trunk + heads


def overhead_of(model: str, hidden: int) -> int:
    """Header, packet and per-tensor bytes: SIREN has H+2 packets of 2 tensors, SPINR H+1 of 4."""
    packets, tensors = (hidden + 1, 4 * (hidden + 1)) if model == "spinr" else (hidden + 2, 2 * (hidden + 2))
    return HEADER_BYTES + PACKET_BYTES * packets + TENSOR_BYTES * tensors


def smallest_bytes(model: str, hidden: int = HIDDEN) -> int:
    """The smallest target :func:`plan` accepts: its narrowest network without positional encoding."""
    return overhead_of(model, hidden) + math.ceil(params_of(model, MIN_WIDTH, hidden, 0) * BITS_PER_PARAM / 8)


def plan(
    width_px: int,
    height_px: int,
    target_bytes: int,
    model: str = "spinr",
    hidden: int = HIDDEN,
    max_width: int | None = None,
) -> Plan:
    """The network for a ``width_px`` x ``height_px`` image and a file of ``target_bytes``: the widest
    of ``hidden`` layers (at most ``max_width``) whose parameters fit at BITS_PER_PARAM, with the
    encoding of :func:`pe_frequencies_for` (fewer frequencies when it would outweigh MAX_INPUT_SHARE)."""
    widest = MAX_WIDTH if max_width is None else max(MIN_WIDTH, min(MAX_WIDTH, max_width))
    if model not in MODELS:
        raise ConfigError(
            f"a rate target sizes the {' and '.join(MODELS)} models, not {model!r}; give --width and --depth"
        )
    if width_px < 1 or height_px < 1:
        raise ConfigError(f"image size {width_px}x{height_px} must be positive")
    bpp = target_bytes * 8 / (width_px * height_px)
    pe = pe_frequencies_for(width_px, height_px, bpp)
    budget = 8 * (target_bytes - overhead_of(model, hidden)) / BITS_PER_PARAM
    lo, hi = 0, widest + 1  # the widest network that fits (parameters grow with the width)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params_of(model, mid, hidden, pe) <= budget else (lo, mid)
    while (
        pe > 0
        and lo >= MIN_WIDTH
        and posenc.encoded_dim(pe) * lo > MAX_INPUT_SHARE * params_of(model, lo, hidden, pe)
    ):
        pe -= 1  # a narrow net cannot afford a wide encoding: fewer frequencies, then re-fit the width
        while params_of(model, lo + 1, hidden, pe) <= budget and lo < widest:
            lo += 1
    if lo < MIN_WIDTH:
        # Too few bytes for the encoding: drop frequencies before giving up.
        while pe > 0 and params_of(model, MIN_WIDTH, hidden, pe) > budget:
            pe -= 1
        if params_of(model, MIN_WIDTH, hidden, pe) > budget:
            least = smallest_bytes(model, hidden)
            raise ConfigError(
                f"a target of {target_bytes} bytes is too small for a {model} stream of a {width_px}x{height_px}"
                f" image: the smallest is about {least} bytes"
            )
        lo = MIN_WIDTH
    return Plan(model, lo, hidden, pe, PE_SCALE, params_of(model, lo, hidden, pe), target_bytes)
