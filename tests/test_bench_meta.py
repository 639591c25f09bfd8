"""``spinr bench meta``'s bookkeeping (benchmarks/meta_init.py): per rate, the fewest meta steps that
reach the random encode's PSNR and the shares they give; the per-rate summary over images."""

from __future__ import annotations

from typing import Any

from benchmarks.meta_init import _speed, summarize


def _enc(psnr: float, seconds: float, nbytes: int = 900) -> dict[str, Any]:
    return {"bytes": nbytes, "bpp": nbytes * 8 / 24576, "psnr": psnr, "seconds": seconds,
            "lost_prefix": [], "lost_skip": [], "lost_theta0": []}  # fmt: skip


def test_speed_takes_the_fewest_steps_that_reach_random() -> None:
    row = {"random": _enc(25.0, 40.0)}
    runs = [(250, _enc(24.9, 4.0)), (500, _enc(25.0, 8.0)), (750, _enc(25.5, 12.0))]
    got = _speed(0.3, 2000, row, runs)
    assert got["steps_share"] == 0.25 and got["time_ratio"] == 5.0
    assert [r["steps"] for r in got["meta_runs"]] == [250, 500, 750]
    never = _speed(0.3, 2000, row, [(250, _enc(24.0, 4.0)), (500, None)])
    assert never["steps_share"] is None and never["time_ratio"] is None
    assert [r["steps"] for r in never["meta_runs"]] == [250]  # a rate the run could not reach is left out
    missed = _speed(0.3, 2000, {"random": None}, runs)  # the random encode could not make this rate
    assert missed["steps_share"] is None and missed["random_psnr"] is None


def test_summary_reports_speed_at_every_rate() -> None:
    def image(shares: list[float | None]) -> dict[str, Any]:
        rows, speeds = [], []
        for bpp, share in zip((0.3, 0.5), shares, strict=True):
            rows.append({"target_bpp": bpp, "random": _enc(25.0, 40.0), "meta": _enc(25.2, 5.0),
                         "classical_at_meta_bytes": {c: 20.0 for c in ("jpeg", "webp", "jpeg2000", "avif")}})  # fmt: skip
            speeds.append(
                {"bpp": bpp, "steps_share": share, "time_ratio": None if share is None else 1 / share}
            )
        return {"rows": rows, "bd_rate_percent": float("nan"), "speed": speeds[0], "speed_by_rate": speeds}

    s = summarize([image([0.125, 0.5]), image([0.25, None])], [0.3, 0.5])
    at3, at5 = s["speed_by_rate"]
    assert at3["bpp"] == 0.3 and at3["steps_share_worst"] == 0.25 and at3["steps_share_mean"] == 0.1875
    assert at3["time_ratio_worst"] == 4.0 and at3["time_ratio_mean"] == 6.0
    assert at5["steps_share_worst"] is None and at5["time_ratio_mean"] is None  # one image never reached it
    assert s["steps_share"] == 0.1875 and s["table"][0]["delta_psnr"] == 0.2
    # streams too short to lose a middle unit (two units, e.g. trimmed): no mean, rather than a warning
    assert s["lost_middle_unit_mean_psnr"] == {"prefix": None, "skip": None, "theta0": None}
