"""Units derived from the arch: the torch models and the numpy modules agree for every registered model,
and a v1 header whose units disagree with its arch is refused before anything is computed (issue #11,
item 4)."""

from __future__ import annotations

import pytest
import torch
from _v1 import siren_units, v1_header

from codec.arch import DECODERS, decoder_for
from codec.errors import BitstreamError
from codec.header import parse_v1_header_payload
from codec.models import MODELS, build_model
from codec.units import MAX_TOTAL_ELEMENTS, UnitSpec
from codec.v1.payload import encode_payload

# Each registered model with options that change its units (heads, filters, mapping sizes, tables).
VARIANTS = [
    ("siren", {}),
    ("spinr", {"head": "shared"}),
    ("spinr", {"head": "per_stage", "residual": False}),
    ("fourier", {"mapping_size": 5}),
    ("mfn", {"filter": "gabor"}),
    ("mfn", {"filter": "fourier"}),
    ("wire", {}),
    ("diner", {"features": 3}),
]


def test_variants_cover_every_registered_model() -> None:
    assert {name for name, _ in VARIANTS} == set(MODELS) == set(DECODERS)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=str)
@pytest.mark.parametrize(("width", "hidden"), [(7, 0), (5, 3)])
def test_torch_and_numpy_units_agree(name: str, options: dict, width: int, hidden: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, width, hidden, options)
    model.set_image_size(6, 4)
    torch_units = [
        UnitSpec(unit, tuple((t_name, tuple(t.shape)) for t_name, t in tensors))
        for unit, tensors in model.units()
    ]
    assert decoder_for(name, model.arch()).units() == torch_units


def _refused(units: list, match: str) -> None:
    header = v1_header(width=8, hidden=2)
    header["units"] = units
    with pytest.raises(BitstreamError, match=match):
        parse_v1_header_payload(encode_payload(header))


def test_v1_units_must_be_those_the_arch_implies() -> None:
    good = siren_units(8, 2)
    assert (
        parse_v1_header_payload(encode_payload(v1_header(8, 2))).units
        == decoder_for("siren", v1_header(8, 2)["arch"]).units()
    )
    _refused(good[:-1], r"header has 3 units but siren \(width 8, 2 hidden layers\) needs 4")
    _refused(good + good[:1], "header has 5 units but .* needs 4")
    wrong_shape = [dict(u) for u in good]
    wrong_shape[1] = {"name": "hidden.1", "tensors": [["weight", [8, 7]], ["bias", [8]]]}
    _refused(
        wrong_shape,
        r"header unit 1 is 'hidden.1' with weight\[8, 7\], bias\[8\]; siren \(width 8, 2 hidden layers\) needs "
        r"'hidden.1' with weight\[8, 8\], bias\[8\]",
    )
    renamed = [dict(u) for u in good]
    renamed[3] = {"name": "readout", "tensors": good[3]["tensors"]}
    _refused(renamed, "header unit 3 is 'readout' .* needs 'output'")
    swapped = [dict(u) for u in good]
    swapped[0] = {"name": "input", "tensors": good[0]["tensors"][::-1]}
    _refused(swapped, r"header unit 0 is 'input' with bias\[8\], weight\[8, 2\]")


def test_absurd_arch_is_refused_before_allocation() -> None:
    """A width and depth in range each but together far beyond what a decoder may hold."""
    arch = {"width": 4096, "hidden_layers": 256, "first_omega_0": 30.0, "hidden_omega_0": 30.0}
    with pytest.raises(BitstreamError, match=f"holds .* weights in all, more than {MAX_TOTAL_ELEMENTS}"):
        decoder_for("siren", arch)
    table = {"width": 8, "hidden_layers": 1, "features": 64, "omega_0": 30.0, "table_width": 65535}
    with pytest.raises(BitstreamError, match=r"tensor table/table has .* elements, more than 16777216"):
        decoder_for("diner", table | {"table_height": 65535})
