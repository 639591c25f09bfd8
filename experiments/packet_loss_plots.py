"""The packet-loss experiment's PNG plots: one row of panels per rate target, SPINR's subjects in solid
lines and the JPEGs matched to them (same bytes, same protection) dashed in the same colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.loss_streams import split_subject
from experiments.packet_loss_report import BURST_LOSS, HEADERS
from experiments.reports import plt


def _style(name: str, protections: list[str]) -> tuple[str, str]:
    """(colour, line style): SPINR's subjects solid, their matched JPEGs dashed in the same colour, the
    JPEGs in MTU packets dash-dotted (with protection: in its colour)."""
    base, _, spec = name.partition("+")
    k = protections.index(spec) + 1 if spec in protections else 0
    if base == "siren":
        return "C7", "-"
    if base == "spinr/skip":
        return "C5", ":"
    if base == "jpeg/mtu":
        return ("C9" if not spec else f"C{k}"), "-."
    return f"C{k}", "--" if base.startswith("jpeg") else "-"


def _draw(ax: Any, curves: dict[str, list[list[float]]], subjects: list[str], protections: list[str]) -> None:
    for s in subjects:
        c = np.array(curves.get(s) or [])
        if not c.size:
            continue
        name = split_subject(s)[1]
        color, style = _style(name, protections)
        ax.plot(c[:, 0], c[:, 1], style, marker="o", ms=3, color=color, label=name)
        if style == "-":
            ax.fill_between(c[:, 0], c[:, 1] - c[:, 2], c[:, 1] + c[:, 2], color=color, alpha=0.06)


def plots(summary: dict[str, Any], subjects: list[str], out: Path) -> None:
    """loss.png (rates x header modes), loss_burst.png and loss_ber.png (rates x CRC / used)."""
    pyplot = plt()
    rates = sorted({split_subject(s)[0] for s in subjects})
    prot = list(summary["settings"]["protection"])

    def of(r: float) -> list[str]:
        return [s for s in subjects if split_subject(s)[0] == r]

    fig, axes = pyplot.subplots(len(rates), 2, figsize=(10, 3.6 * len(rates)), squeeze=False)
    for row, r in zip(axes, rates, strict=True):
        for ax, hd in zip(row, HEADERS, strict=True):
            _draw(ax, summary["loss"][hd], of(r), prot)
            ax.set_title(f"{r:g} bpp, header {hd}", fontsize=9)
            ax.set_xlabel("datagram loss rate")
            ax.set_ylabel("PSNR (dB)")
    axes[0][1].legend(fontsize=6, loc="upper right")
    _save(pyplot, fig, out / "loss.png")

    fig, axes = pyplot.subplots(1, len(rates), figsize=(5 * len(rates), 3.6), squeeze=False)
    for ax, r in zip(axes[0], rates, strict=True):
        _draw(ax, summary["burst"], of(r), prot)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"mean burst length (loss {BURST_LOSS:.0%})")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{r:g} bpp", fontsize=9)
    axes[0][0].legend(fontsize=6, loc="lower right")
    _save(pyplot, fig, out / "loss_burst.png")

    fig, axes = pyplot.subplots(len(rates), 2, figsize=(10, 3.6 * len(rates)), squeeze=False)
    for row, r in zip(axes, rates, strict=True):
        for ax, mode in zip(row, ("crc", "use"), strict=True):
            _draw(ax, summary["ber_ppm"][mode], of(r), prot)
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlabel("bit errors per million bits")
            ax.set_ylabel("PSNR (dB)")
            what = "CRC drops damaged packets" if mode == "crc" else "damaged packets used"
            ax.set_title(f"{r:g} bpp: {what}", fontsize=9)
    axes[0][0].legend(fontsize=6, loc="lower left")
    _save(pyplot, fig, out / "loss_ber.png")


def _save(pyplot: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    pyplot.close(fig)
