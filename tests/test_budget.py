"""The decode budget (codec/budget.py): refused before anything is computed, with the numbers, in the
library, the CLI (and its flags to raise it) and the server's preview (tests/test_server_api.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _bitstreams import make_stream, random_stream

from client.cli import main
from codec.bitstream import write_file
from codec.budget import DEFAULT_BUDGET, BudgetError, DecodeBudget, parse_limit
from codec.decoder import ProgressiveDecoder


def never(*args: object) -> None:
    raise AssertionError("computed although over budget")


def test_work_over_budget_is_refused_before_the_first_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8x2 + 2 x 8x8 + 3x8 = 168 multiply-adds per pixel, and 3 layers x 8 sines at 90 each: 2,328
    bs = make_stream(width=8, hidden=2)
    dec = ProgressiveDecoder.from_bitstream(bs, budget=DecodeBudget(max_work=2328 * 100))
    assert dec.decode((10, 10)).rgb.shape == (10, 10, 3)  # exactly at the limit
    monkeypatch.setattr(dec.arch, "trunk_tile", never)
    with pytest.raises(
        BudgetError,
        match=r"10x11 needs 110 pixels x 2,328 multiply-adds \(activations included\) = 2.56e\+05, over the "
        r"decode budget of 2.33e\+05 \(max_work\)",
    ) as err:
        dec.decode((10, 11))
    assert err.value.limit == "max_work"
    with pytest.raises(BudgetError, match=r"output size 9000x8000 is 72,000,000 pixels, over .* 16,000,000"):
        ProgressiveDecoder.from_bitstream(bs).decode((9000, 8000))


def test_a_stream_over_the_parameter_budget_is_refused_when_its_header_arrives() -> None:
    bs = make_stream(width=8, hidden=2)  # 24 + 72 + 72 + 27 = 195 weights
    small = DecodeBudget(max_params=194)
    with pytest.raises(BudgetError, match=r"holds 195 weights, over the decode budget of 194 \(max_params\)"):
        ProgressiveDecoder(bs.header, budget=small)
    dec = ProgressiveDecoder(budget=small)
    packets = bs.packets()
    status = dec.add_packet(packets[0].to_bytes())
    assert not status.accepted and "195 weights" in (status.error or "")
    assert ProgressiveDecoder(bs.header, budget=DecodeBudget(max_params=195)).header is not None


def test_activation_memory_too_small_for_one_tile_is_refused() -> None:
    bs = make_stream(width=8, hidden=2)
    with pytest.raises(
        BudgetError, match=r"one tile of siren .* MiB of activations, over .*max_activation_bytes"
    ):
        ProgressiveDecoder(bs.header, budget=DecodeBudget(max_activation_bytes=1000))


def test_budget_values_are_checked() -> None:
    with pytest.raises(BudgetError, match="max_work is 0; expected a positive integer"):
        DecodeBudget(max_work=0)
    assert parse_limit("2e11") == 200_000_000_000 and parse_limit("17") == 17
    for bad in ("x", "0", "1.5", "-3", "inf", "nan"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_limit(bad)
    assert DEFAULT_BUDGET.with_limits({"max_work": 5, "max_params": None}) == DecodeBudget(max_work=5)


def test_cli_decode_names_the_numbers_and_the_flag_that_raises_the_limit(tmp_path: Path, capsys) -> None:
    path, png = tmp_path / "s.spnr", tmp_path / "out.png"
    write_file(path, make_stream(width=8, hidden=2))
    assert main(["decode", str(path), "-o", str(png), "--size", "100x100", "--max-work", "16800"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not png.exists()
    assert (
        "needs 10,000 pixels x 2,328 multiply-adds (activations included) = 2.33e+07, over the decode "
        "budget of 1.68e+04" in err
    )
    assert err.strip().endswith("--max-work raises it")
    argv = ["decode", str(path), "-o", str(png), "--size", "100x100", "--max-work", "2.328e7", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["width"] == 100 and png.is_file()
    assert main(["decode", str(path), "-o", str(png), "--max-params", "100"]) == 1
    assert (
        "195 weights, over the decode budget of 100 (max_params); --max-params raises it"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exit_:
        main(["decode", str(path), "-o", str(png), "--max-work", "1.5"])
    assert exit_.value.code == 2
    assert "--max-work: '1.5' must be a whole number >= 1" in capsys.readouterr().err


def test_cli_eval_takes_the_budget_too(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.spnr"
    bs = make_stream(width=8, hidden=2)
    write_file(path, bs)
    ref = tmp_path / "ref.png"
    from codec.image import save_png

    save_png(ref, np.zeros((9, 12, 3), np.uint8))
    assert main(["eval", str(path), str(ref), "--max-work", "100"]) == 1
    assert "(max_work); --max-work raises it" in capsys.readouterr().err
    assert main(["eval", str(path), str(ref), "--json"]) == 0


def test_loading_a_file_checks_max_params_before_reading_any_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    import codec.bitstream as bitstream

    data = make_stream(width=8, hidden=2).to_bytes()
    monkeypatch.setattr(bitstream, "parse_unit", never)
    with pytest.raises(BudgetError, match=r"siren stream holds 195 weights, over the decode budget of 194"):
        bitstream.load_bitstream(data, True, DecodeBudget(max_params=194))
    with pytest.raises(BudgetError, match="195 weights"):
        bitstream.load_bitstream(data, False, DecodeBudget(max_params=194))


def test_cli_info_takes_max_params(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.spnr"
    write_file(path, make_stream(width=8, hidden=2))
    assert main(["info", str(path), "--max-params", "194"]) == 1
    assert "over the decode budget of 194 (max_params); --max-params raises it" in capsys.readouterr().err
    assert main(["info", str(path), "--json"]) == 0


OLD_MAX_WORK = 64_000_000_000
"""The budget before activations counted: 6.4e10 multiply-adds, nothing else."""
COSTLY = [
    ("wire", {"width": 4, "hidden_layers": 100, "omega_0": 20.0, "scale_0": 10.0}),
    ("mfn", {"width": 4, "hidden_layers": 100, "filter": "gabor"}),
]
"""Narrow, deep nets of costly activations: 404 Gabor wavelets (WIRE) or filters (MFN) per pixel, about
6.5 ns each here: at 2048x2048 some 10 s of one core, for 2.7e10 / 1.4e10 multiply-adds."""


@pytest.mark.parametrize(("model", "arch"), COSTLY, ids=[m for m, _ in COSTLY])
def test_costly_activations_count_in_the_work_budget(
    model: str, arch: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    dec = ProgressiveDecoder.from_bitstream(random_stream(model, arch, (2048, 2048)))
    assert dec.arch is not None
    steps = list(range(dec.arch.trunk_steps()))
    pixels = 2048 * 2048
    assert pixels * dec.arch.macs_per_pixel(steps, 0) <= OLD_MAX_WORK  # the old budget let it through
    monkeypatch.setattr(dec.arch, "trunk_tile", never)
    with pytest.raises(BudgetError, match=r"multiply-adds \(activations included\) = .*\(max_work\)") as err:
        dec.decode()
    assert err.value.limit == "max_work"
    assert f"x {dec.arch.work_per_pixel(steps, 0):,} multiply-adds" in str(err.value)
    assert pixels * dec.arch.work_per_pixel(steps, 0) > 3 * DEFAULT_BUDGET.max_work


def test_the_presets_streams_fit_the_default_budget_at_typical_sizes() -> None:
    """Every rate preset's network (the size model's, 0.25-2 bpp) and the paper profile's 64 x 16 SPINR
    decode a Kodak-sized picture, landscape or portrait, within the default budget; a 2x zoom of the
    paper profile needs --max-work."""
    from codec.arch import decoder_for
    from codec.sizemodel import plan

    def per_pixel(arch: dict) -> int:
        dec = decoder_for("spinr", arch)
        return dec.work_per_pixel(list(range(dec.depths)), dec.depths - 1)

    base = {"first_omega_0": 30.0, "hidden_omega_0": 30.0, "head": "per_stage", "residual": True}
    paper = {**base, "width": 64, "hidden_layers": 16}
    for size in ((768, 512), (512, 768)):
        for bpp in (0.25, 0.5, 1.0, 2.0):
            p = plan(*size, int(bpp * size[0] * size[1] / 8))
            arch = {
                **base,
                "width": p.width,
                "hidden_layers": p.hidden_layers,
                "pe_frequencies": p.pe_frequencies,
            }
            DEFAULT_BUDGET.check_decode(*size, per_pixel(arch), f"{p.describe()} at {bpp} bpp")
        assert size[0] * size[1] * per_pixel(paper) < 0.45 * DEFAULT_BUDGET.max_work
    with pytest.raises(BudgetError, match="max_work"):
        DEFAULT_BUDGET.check_decode(1536, 1024, per_pixel(paper), "the paper profile, zoomed 2x")
