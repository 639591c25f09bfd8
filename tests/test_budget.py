"""The decode budget (codec/budget.py): refused before anything is computed, with the numbers, in the
library, the CLI (and its flags to raise it) and the server's preview (tests/test_server_api.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _bitstreams import make_stream

from client.cli import main
from codec.bitstream import write_file
from codec.budget import DEFAULT_BUDGET, BudgetError, DecodeBudget, parse_limit
from codec.decoder import ProgressiveDecoder


def never(*args: object) -> None:
    raise AssertionError("computed although over budget")


def test_work_over_budget_is_refused_before_the_first_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    bs = make_stream(width=8, hidden=2)  # 8x2 + 2 x 8x8 + 3x8 = 168 multiply-adds per pixel
    dec = ProgressiveDecoder.from_bitstream(bs, budget=DecodeBudget(max_work=168 * 100))
    assert dec.decode((10, 10)).rgb.shape == (10, 10, 3)  # exactly at the limit
    monkeypatch.setattr(dec.arch, "trunk_tile", never)
    with pytest.raises(
        BudgetError,
        match=r"10x11 needs 110 pixels x 168 multiply-adds = 1.85e\+04, over the decode budget of 1.68e\+04 \(max_work\)",
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
    assert "needs 10,000 pixels x 168 multiply-adds = 1.68e+06, over the decode budget of 1.68e+04" in err
    assert err.strip().endswith("--max-work raises it")
    argv = ["decode", str(path), "-o", str(png), "--size", "100x100", "--max-work", "1.68e6", "--json"]
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
