"""The decode budget: how much one decode may ask of the machine, checked before anything is computed.

A stream is a few kilobytes, but what it asks of a decoder grows with the architecture its header
names and with the output size a client asks for: a 1.7 KB file with a wide enough net costs a
gigabyte and seconds per decode. Every decoder here (``spinr decode``, the server's preview, the
browser's ``ProgressiveDecoder``) refuses, with the numbers, what is over its budget:

- ``max_params``: weights a stream may hold (checked when its header arrives, before a unit is read);
- ``max_work``: output pixels x multiply-adds per pixel of the layers a decode runs (about pixels x
  parameters), every activation value counted at its measured cost in multiply-adds
  (:data:`ACTIVATION_COSTS`); checked per decode, before the first tile;
- ``max_activation_bytes``: the activations kept at once: one tile's working buffers always, plus
  the per-size cache that makes progressive decoding cost one layer per new stage, kept only while
  it fits (a decode that cannot keep it recomputes the prefix instead, in tiles);
- ``max_pixels``: output pixels of one decode.

The defaults let the streams the encoder's presets make decode at their size (a 768x512 Kodak
picture with the paper profile's 64 x 16 SPINR is 2.6e10 multiply-adds and 1,088 sines a pixel,
6.4e10 in all: 0.4 of ``max_work``), and keep a hostile stream to a few seconds of one core and a
few hundred MB. docs/FORMAT.md, "Decode
budget", lists them; the JS decoder (client/web/codec/budget.js) has the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from codec.errors import BitstreamError

MIB = 1 << 20

ACTIVATION_COSTS: dict[str, int] = {
    "sine": 90,
    "relu": 80,
    "fourier_features": 300,
    "table": 640,
    "wire_gabor": 320,
    "mfn_gabor": 350,
    "mfn_fourier": 240,
}
"""What one activation value costs a decode, in multiply-adds: its time per value on one core over
the time of one multiply-add of a float32 matmul at the tile's shape (8192 x 64 x 64), measured by
``python -m benchmarks.activation_cost`` (docs/DECODER.md, "Activation costs"; the browser's
client/web/codec/budget.js has the same table). Counting multiply-adds alone let a narrow, deep net
with costly activations fit ``max_work`` and still take seconds: a WIRE stream of width 8 does 640
multiply-adds per pixel but 24 complex Gabor wavelets. Per kind (``ArchDecoder.step_activations``):

- ``sine``: a sine layer's bias, frequency and sine per unit (SIREN, SPINR, DINER; the positional
  encoding's sines and cosines);
- ``relu``: FourierNet's bias and ReLU per unit;
- ``fourier_features``: one cosine or sine of FourierNet's projected coordinates;
- ``table``: DINER's table lookup of one pixel (its cell index in float64, the gather of its features);
- ``wire_gabor``: WIRE's complex Gabor wavelet exp(i omega z - |scale z|^2) per unit;
- ``mfn_gabor``, ``mfn_fourier``: one MFN filter (sine, and for Gabor the Gaussian) times the layer.
"""


def activation_work(activations: dict[str, int]) -> int:
    """Multiply-adds that ``activations`` (values per pixel by kind) cost at ACTIVATION_COSTS."""
    return sum(ACTIVATION_COSTS[kind] * n for kind, n in activations.items())


class BudgetError(BitstreamError):
    """A stream or a decode would need more than the decoder's budget allows (a kind of
    BitstreamError, so whatever reports a refused stream reports this too); the message gives both
    numbers and ``limit`` the budget field (a shell names its option for it: ``spinr decode --max-work``)."""

    def __init__(self, message: str, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class DecodeBudget:
    """Limits on one decoder (all positive integers)."""

    max_params: int = field(default=1 << 22, metadata={"help": "weights a stream may hold"})
    """Weights a stream may hold (4.2 M: 16 MiB as float32; the paper profile's largest SPINR has
    0.27 M). Checked on the header, before any unit is read (entropy decoding 16 M codes alone takes
    a second)."""
    max_work: int = field(
        default=160_000_000_000,
        metadata={"help": "output pixels x multiply-adds per pixel of one decode, activations included"},
    )
    """Output pixels x multiply-adds per pixel of one decode, each activation value counted at its
    cost in multiply-adds (ACTIVATION_COSTS) (1.6e11: about 5 s of one core for any family)."""
    max_activation_bytes: int = field(
        default=256 * MIB,
        metadata={"help": "activation memory: a tile's buffers, plus the progressive cache while it fits"},
    )
    """Activation memory: one tile's buffers plus the progressive cache (which is dropped, not
    refused, when it does not fit)."""
    max_pixels: int = field(default=16_000_000, metadata={"help": "output pixels of one decode"})
    """Output pixels of one decode: the server's largest image. Whatever the model, a pixel costs
    about 0.2 us of coordinates, sines and conversion (16 M: 3.6 s on this CPU)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BudgetError(f"decode budget {f.name} is {value!r}; expected a positive integer")

    def check_params(self, params: int, what: str) -> None:
        if params > self.max_params:
            raise BudgetError(
                f"{what} holds {params:,} weights, over the decode budget of {self.max_params:,} (max_params)",
                limit="max_params",
            )

    def check_decode(self, width: int, height: int, work_per_pixel: int, what: str) -> None:
        """Output size and work of one decode of ``what`` (e.g. ``spinr 64x16 at 16 stages``)."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise BudgetError(
                f"output size {width}x{height} is {pixels:,} pixels, over the decode budget of "
                f"{self.max_pixels:,} (max_pixels)",
                limit="max_pixels",
            )
        work = pixels * work_per_pixel
        if work > self.max_work:
            raise BudgetError(
                f"decoding {what} at {width}x{height} needs {pixels:,} pixels x {work_per_pixel:,} "
                f"multiply-adds (activations included) = {work:.3g}, over the decode budget of "
                f"{self.max_work:.3g} (max_work)",
                limit="max_work",
            )

    def check_tile(self, tile_bytes: int, what: str) -> None:
        if tile_bytes > self.max_activation_bytes:
            raise BudgetError(
                f"one tile of {what} needs {tile_bytes / MIB:.1f} MiB of activations, over the decode "
                f"budget of {self.max_activation_bytes / MIB:.1f} MiB (max_activation_bytes)",
                limit="max_activation_bytes",
            )

    def with_limits(self, limits: dict[str, Any]) -> DecodeBudget:
        """This budget with the fields given in ``limits`` (None: keep) replaced and checked."""
        return replace(self, **{k: v for k, v in limits.items() if v is not None})


DEFAULT_BUDGET = DecodeBudget()
OWN_STREAM_BUDGET = DecodeBudget(max_params=1 << 40, max_work=1 << 62, max_pixels=1 << 32)
"""The encoder decoding the stream it has just made (for the PSNRs it reports and writes): nothing
there came from outside, so no limit on its size or work (a 2000x2000 encode at the default rate is
1.3e12 multiply-adds, 20x the default ``max_work``); tiles still bound its memory."""
BUDGET_FIELDS = tuple(f.name for f in fields(DecodeBudget))


def parse_limit(text: str) -> int:
    """A budget value from the command line or a query: an integer, in scientific notation too
    (``2e11``); ValueError naming it otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not (value >= 1 and value < 2**63 and value == int(value)):
        raise ValueError(f"{text!r} must be a whole number >= 1")
    return int(value)
