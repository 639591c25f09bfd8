"""The packet-loss experiment's numbers as a summary, a CSV, a Markdown report and PNG plots.

Cells are PSNR means over every channel draw with the std over channel seeds pooled within fits (the
spread the channel causes, not the spread between images); see :mod:`experiments.packet_loss`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.reports import markdown_table, plt, write_csv, write_md

if TYPE_CHECKING:
    from experiments.profiles import Profile

BURST_LOSS = 0.1
"""Loss rate of the burst-length sweep."""
Key = tuple[str, float, str, str, str]
"""A cell: (sweep, x, header, mode, subject)."""
Stats = dict[str, float]
HEADERS = ("reliable", "lossy")
EXPECTED_AT = (0.05, 0.1)
"""Loss rates of the 'expected PSNR' table."""


def stats(values: list[tuple[float, int]], seeds: int) -> Stats:
    """Mean over all draws; std over channel seeds within a fit, pooled over fits (the spread the
    channel causes, not the spread between images)."""
    p = np.array([v for v, _ in values], dtype=np.float64)
    per_fit = p.reshape(-1, seeds)
    return {
        "n": int(p.size),
        "mean": float(p.mean()),
        "std": float(np.sqrt(per_fit.var(axis=1, ddof=1).mean())) if seeds > 1 else 0.0,
        "p10": float(np.percentile(p, 10)),
        "nothing": float(np.mean([u == 0 for _, u in values])),
    }


def _ms(s: Stats) -> str:
    return f"{s['mean']:.2f} ± {s['std']:.2f}"


def write_csv_rows(
    path: Path, table: dict[Key, Stats], clean: dict[str, float], conceal_rows: list[dict[str, Any]]
) -> None:
    """One row per (condition, subject), the no-loss PSNRs, and the concealment comparison."""
    rows: list[dict[str, Any]] = [
        {"sweep": k[0], "x": k[1], "header": k[2], "mode": k[3], "subject": k[4], **s}
        for k, s in table.items()
    ]
    rows += [
        {"sweep": "clean", "x": 0.0, "header": "", "mode": "", "subject": s, "mean": v}
        for s, v in clean.items()
    ]
    rows += [
        {
            "sweep": "conceal",
            "x": r["missing_stage"],
            "subject": f"spinr/{c}",
            "mean": r[c],
            "group": r["group"],
        }
        for r in conceal_rows
        for c in ("prefix", "skip")
    ]
    write_csv(path, rows)


def curve(table: dict[Key, Stats], sweep: str, header: str, mode: str, subject: str) -> list[list[float]]:
    """[x, mean, std] points of one subject in one sweep, by x."""
    return sorted(
        [k[1], s["mean"], s["std"]]
        for k, s in table.items()
        if k[0] == sweep and k[2] == header and k[3] == mode and k[4] == subject
    )


def summarize(
    table: dict[Key, Stats],
    clean: dict[str, float],
    subjects: list[str],
    overhead: dict[str, dict[str, float]],
    conceal_rows: list[dict[str, Any]],
    facts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The curves, overheads, concealment means and JPEG facts the CLI prints as JSON."""
    return {
        "clean": clean,
        "loss": {hd: {s: curve(table, "loss", hd, "crc", s) for s in subjects} for hd in HEADERS},
        "burst": {s: curve(table, "burst", "reliable", "crc", s) for s in subjects},
        # Bit error rates in errors per million bits: the CLI's JSON rounds floats to 4 decimals.
        "ber_ppm": {
            m: {
                s: [[x * 1e6, mu, sd] for x, mu, sd in curve(table, "ber", "reliable", m, s)]
                for s in subjects
            }
            for m in ("crc", "use")
        },
        "overhead": overhead,
        "conceal": {
            c: float(np.mean([r[c] for r in conceal_rows])) if conceal_rows else float("nan")
            for c in ("prefix", "skip")
        },
        "jpeg": {
            k: [f[k] for f in facts] for k in ("jpeg_quality", "jpeg_bytes", "spinr_bytes", "siren_bytes")
        },
    }


def expected(table: dict[Key, Stats], subjects: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean PSNR at 5 % and 10 % loss per header mode and subject."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for hd in HEADERS:
        for s in subjects:
            for r in EXPECTED_AT:
                if ("loss", r, hd, "crc", s) in table:
                    out.setdefault(hd, {}).setdefault(s, {})[f"{r:.0%}"] = table[("loss", r, hd, "crc", s)][
                        "mean"
                    ]
    return out


# -- Markdown -----------------------------------------------------------------------------------------


def _intro(summary: dict[str, Any], mtu: int, profile: Profile, facts: list[dict[str, Any]]) -> str:
    f0, jpeg, seeds = facts[0], summary["jpeg"], summary["channel_seeds"]
    n_draws = summary["groups"] * seeds
    return (
        f"Profile {profile.name}: {summary['groups']} (image, seed) fit(s) x {seeds} channel seeds "
        f"= {n_draws} draws per cell, {profile.steps} steps, MTU {mtu} bytes. Cells: PSNR (dB), mean over all "
        f"draws ± std over channel seeds (pooled within fits); nothing decodable = mid-grey picture. SPINR stream {np.mean(jpeg['spinr_bytes']):.0f} B "
        f"in {len(f0['spinr_packets'])} packets (first fit: {f0['spinr_packets']}), SIREN {np.mean(jpeg['siren_bytes']):.0f} B, "
        f"JPEG {np.mean(jpeg['jpeg_bytes']):.0f} B (quality {jpeg['jpeg_quality']}). "
        f"Protected packets (index, 0 = header): {f0['critical']}.\n\n"
    )


def _sweep_table(
    table: dict[Key, Stats], subjects: list[str], sweep: str, header: str, mode: str, fmt: str
) -> str:
    xs = sorted({k[1] for k in table if k[0] == sweep})
    body = [
        [s] + [_ms(table[(sweep, x, header, mode, s)]) for x in xs]
        for s in subjects
        if (sweep, xs[0], header, mode, s) in table
    ]
    return markdown_table(["subject"] + [format(x, fmt) for x in xs], body)


def _sweeps(table: dict[Key, Stats], subjects: list[str]) -> str:
    def sweep(*how: str) -> str:
        return _sweep_table(table, subjects, *how)

    md = "## PSNR vs loss rate (independent loss), header reliable\n\n" + sweep(
        "loss", "reliable", "crc", ".0%"
    )
    md += "\n## PSNR vs loss rate, header unprotected (a lost header: nothing decodes)\n\n"
    md += sweep("loss", "lossy", "crc", ".0%")
    md += f"\n## PSNR vs mean burst length (Gilbert-Elliott), loss {BURST_LOSS:.0%}, header reliable\n\n"
    md += sweep("burst", "reliable", "crc", "g")
    md += "\n## Bit errors (no loss), header reliable: CRC detection (damaged = lost)\n\n"
    md += sweep("ber", "reliable", "crc", "g")
    md += "\n## Bit errors: damaged packets used anyway\n\n" + sweep("ber", "reliable", "use", "g")
    bers = sorted({k[1] for k in table if k[0] == "ber"})
    body = [
        [s]
        + [
            " / ".join(f"{table[('ber', e, 'reliable', m, s)]['p10']:.2f}" for m in ("crc", "use"))
            for e in bers
        ]
        for s in subjects
    ]
    return (
        md
        + "\nWorst draws: 10th percentile PSNR, crc / use.\n\n"
        + markdown_table(["subject"] + [format(e, "g") for e in bers], body)
    )


def _expected(summary: dict[str, Any], table: dict[Key, Stats], subjects: list[str]) -> str:
    body = []
    for s in subjects:
        row = [s, f"{summary['clean'][s]:.2f}"]
        for hd in HEADERS:
            for r in EXPECTED_AT:
                st = table.get(("loss", r, hd, "crc", s))
                row.append(f"{st['mean']:.2f} ({st['nothing']:.0%})" if st else "-")
        oh = summary["overhead"].get(s)
        row.append(f"{oh['bytes']:.0f} B ({oh['ratio']:.1%})" if oh else "0")
        body.append(row)
    headers = ["subject", "no loss"]
    headers += [f"{r:.0%} (hdr {hd})".replace("%", " %") for hd in HEADERS for r in EXPECTED_AT]
    md = "\n## Expected PSNR, protection overhead\n\n" + markdown_table([*headers, "overhead"], body)
    return md + (
        "\nIn brackets: share of draws where nothing decoded. Overhead: extra bytes on the wire (envelopes, "
        "copies, parity) per stream, mean over fits, and ratio to the stream's bytes.\n"
    )


def _concealment(summary: dict[str, Any], conceal_rows: list[dict[str, Any]]) -> str:
    md = "\n## Concealment: one middle SPINR layer missing, all else intact\n\n"
    if not conceal_rows:
        return md + "No middle layer (fewer than 2 hidden layers).\n"
    ks = sorted({r["missing_stage"] for r in conceal_rows})
    body = [
        [f"stage {k}"]
        + [
            f"{np.mean([r[c] for r in conceal_rows if r['missing_stage'] == k]):.2f}"
            for c in ("full", "prefix", "skip")
        ]
        for k in ks
    ]
    md += markdown_table(["missing", "all layers", "prefix", "skip"], body)
    better = "skip" if summary["conceal"]["skip"] > summary["conceal"]["prefix"] else "prefix"
    return md + (
        f"\nMean over missing stages and fits: prefix {summary['conceal']['prefix']:.2f} dB, "
        f"skip {summary['conceal']['skip']:.2f} dB: **{better}** is better.\n"
    )


def write_markdown(
    path: Path,
    summary: dict[str, Any],
    table: dict[Key, Stats],
    subjects: list[str],
    mtu: int,
    profile: Profile,
    facts: list[dict[str, Any]],
    conceal_rows: list[dict[str, Any]],
) -> None:
    md = _intro(summary, mtu, profile, facts) + _sweeps(table, subjects)
    md += _expected(summary, table, subjects) + _concealment(summary, conceal_rows)
    write_md(path, "Packet loss: SIREN, SPINR, protected SPINR, progressive JPEG", md)


# -- plots --------------------------------------------------------------------------------------------


def _draw(
    ax: Any, subjects: list[str], curves: dict[str, list[list[float]]], style: str = "-", label: bool = True
) -> None:
    for i, s in enumerate(subjects):
        c = np.array(curves.get(s) or [])
        if not c.size:
            continue
        color = f"C{i}"
        ax.plot(c[:, 0], c[:, 1], style, marker="o", ms=3, color=color, label=s if label else None)
        if style == "-":
            ax.fill_between(c[:, 0], c[:, 1] - c[:, 2], c[:, 1] + c[:, 2], color=color, alpha=0.06)


def plots(summary: dict[str, Any], subjects: list[str], out: Path) -> None:
    """loss.png (both header modes), loss_burst.png and loss_ber.png."""
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, hd in zip(axes, HEADERS, strict=True):
        _draw(ax, subjects, summary["loss"][hd])
        ax.set_title(f"header {hd}", fontsize=9)
        ax.set_xlabel("packet loss rate")
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].legend(fontsize=6, loc="upper right")
    _save(pyplot, fig, out / "loss.png")

    fig, ax = pyplot.subplots(figsize=(4.8, 3.4))
    _draw(ax, subjects, summary["burst"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"mean burst length (loss {BURST_LOSS:.0%})")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=6, loc="lower right")
    _save(pyplot, fig, out / "loss_burst.png")

    fig, ax = pyplot.subplots(figsize=(4.8, 3.4))
    _draw(ax, subjects, summary["ber_ppm"]["crc"])
    _draw(ax, subjects, summary["ber_ppm"]["use"], "--", label=False)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("bit errors per million bits")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("solid: CRC drops damaged packets; dashed: damaged packets used", fontsize=8)
    ax.legend(fontsize=6, loc="lower left")
    _save(pyplot, fig, out / "loss_ber.png")


def _save(pyplot: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    pyplot.close(fig)
