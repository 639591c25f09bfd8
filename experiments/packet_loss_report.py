"""The packet-loss experiment's numbers as a summary, a CSV and a Markdown report (plots: packet_loss_plots).

Cells are PSNR means over every channel draw with the std over channel seeds pooled within images (the
spread the channel causes, not the spread between images); see :mod:`experiments.packet_loss`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.rd_report import CLASSICAL, LABELS
from experiments.reports import markdown_table, write_csv, write_md

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
    """Mean over all draws; std over channel seeds within an image, pooled over images (the spread the
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


def equal_bytes(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rate target: the streams' mean bytes, bpp and PSNR with the classical codecs at the same
    bytes, and per protection the SPINR and matched JPEG bytes on the wire (payload + protection)."""
    out: dict[str, Any] = {}
    for r in sorted({f["bpp_target"] for f in facts}):
        mine = [f for f in facts if f["bpp_target"] == r]
        models = {}
        for m in ("spinr", "siren"):
            rows = [f["streams"][m] for f in mine]
            models[m] = {
                k: float(np.mean([x[k] for x in rows]))
                for k in rows[0]
                if k.endswith(("bytes", "psnr")) or k == "bpp"
            }
            models[m] |= {f"{c}_over": sum(not x[f"{c}_fits"] for x in rows) for c in CLASSICAL}
        pairs = {}
        for spec in mine[0]["pairs"]:
            ps = [f["pairs"][spec] for f in mine]
            ratio = [p["jpeg_wire"] / p["spinr_wire"] for p in ps]
            pairs[spec] = {"spinr_wire": float(np.mean([p["spinr_wire"] for p in ps])),
                           "jpeg_wire": float(np.mean([p["jpeg_wire"] for p in ps])),
                           "jpeg_bytes": float(np.mean([p["jpeg_bytes"] for p in ps])),
                           "jpeg_psnr": float(np.mean([p["jpeg_psnr"] for p in ps])),
                           "ratio_min": min(ratio), "ratio_max": max(ratio),
                           "jpeg_quality": [p["jpeg_quality"] for p in ps],
                           "jpeg_over": sum(not p["jpeg_fits"] for p in ps)}  # fmt: skip
        out[f"{r:g}"] = {"images": len(mine), "models": models, "pairs": pairs}
    return out


def summarize(
    table: dict[Key, Stats],
    clean: dict[str, float],
    subjects: list[str],
    overhead: dict[str, dict[str, float]],
    conceal_rows: list[dict[str, Any]],
    facts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The curves, overheads, concealment means and equal-bytes facts the CLI prints as JSON."""
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
        "equal_bytes": equal_bytes(facts),
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


def _intro(summary: dict[str, Any], profile: Profile, facts: list[dict[str, Any]]) -> str:
    st, seeds = summary["settings"], summary["channel_seeds"]
    f0 = facts[0]
    return (
        f"Profile {profile.name}: {summary['groups']} image(s) x {seeds} channel seeds = "
        f"{summary['groups'] * seeds} draws per cell. Streams: `spinr encode --bpp B` at "
        f"{', '.join(f'{r:g}' for r in st['rates'])} bpp (preset {st['effort']}, {st['steps']} steps), MTU "
        f"{st['mtu']} bytes, protection {', '.join(st['protection']) or 'none'}. Cells: PSNR (dB), mean over all "
        f"draws ± std over channel seeds (pooled within images); nothing decodable = mid-grey picture. "
        f"First stream's SPINR packets: {f0['spinr_packets']} bytes; protected packets (index, 0 = header): "
        f"{f0['critical']}. `jpeg` is the best progressive JPEG of at most SPINR's bytes, zero-padded to exactly "
        f"them and cut at the SPINR packets' sizes; `jpeg+P` the same file under the same protection P (the "
        f"same packets protected alike: exactly SPINR's bytes on the wire, the same packets lost); `jpeg/mtu` "
        f"the unprotected `jpeg` file sent in MTU-sized packets; `jpeg/mtu+P` a JPEG in MTU-sized packets "
        f"under P (its first packets, covering SPINR's critical bytes, get CRIT), the best whose bytes on "
        f"the wire are at most the protected SPINR stream's.\n\n"
    )


def _equal_bytes(summary: dict[str, Any]) -> str:
    md = "## The streams at equal bytes\n\n"
    body = []
    for r, e in summary["equal_bytes"].items():
        for m in ("spinr", "siren"):
            x = e["models"][m]
            body.append([r, m, f"{x['bytes']:.0f}", f"{x['bpp']:.3f}", f"{x['psnr']:.2f}"]
                        + [f"{x[f'{c}_psnr']:.2f}" + (f" ({x[f'{c}_over']} over)" if x[f"{c}_over"] else "")
                           for c in CLASSICAL])  # fmt: skip
    md += markdown_table(
        ["target bpp", "model", "bytes", "bpp", "PSNR", *(LABELS[c] for c in CLASSICAL)], body
    )
    md += (
        "\nClassical columns: each codec's best file of at most the stream's bytes, no loss (mean over "
        'images; "k over": it cannot make a file that small on k images, its smallest is counted).\n\n'
    )
    body = []
    for r, e in summary["equal_bytes"].items():
        for spec, p in e["pairs"].items():
            over = f" ({p['jpeg_over']} over)" if p["jpeg_over"] else ""
            body.append([r, spec, f"{p['spinr_wire']:.0f}", f"{p['jpeg_wire']:.0f}{over}",
                         f"{p['ratio_min']:.3f}..{p['ratio_max']:.3f}", f"{p['jpeg_bytes']:.0f}",
                         f"{p['jpeg_psnr']:.2f}", " ".join(f"{q:g}" for q in p["jpeg_quality"])])  # fmt: skip
    md += markdown_table(
        ["target bpp", "protection", "SPINR on the wire", "JPEG on the wire", "JPEG / SPINR",
         "JPEG file", "JPEG PSNR", "JPEG quality"], body)  # fmt: skip
    return md + (
        "\nOn the wire: bytes handed to the channel (packets, and with protection netsim's envelopes, "
        "copies and parity), mean over images; JPEG / SPINR: the range over images.\n\n"
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
        "copies, parity) per stream, mean over images, and ratio to the stream's bytes.\n"
    )


def _concealment(summary: dict[str, Any], conceal_rows: list[dict[str, Any]]) -> str:
    md = "\n## Concealment: one middle SPINR layer missing, all else intact\n\n"
    if not conceal_rows:
        return md + "No middle layer (fewer than 2 hidden layers).\n"
    keys = sorted({(r["bpp"], r["missing_stage"]) for r in conceal_rows})
    body = [
        [f"{bpp:g}", f"stage {k}"]
        + [
            f"{np.mean([r[c] for r in conceal_rows if (r['bpp'], r['missing_stage']) == (bpp, k)]):.2f}"
            for c in ("full", "prefix", "skip")
        ]
        for bpp, k in keys
    ]
    md += markdown_table(["target bpp", "missing", "all layers", "prefix", "skip"], body)
    better = "skip" if summary["conceal"]["skip"] > summary["conceal"]["prefix"] else "prefix"
    return md + (
        f"\nMean over rates, missing stages and images: prefix {summary['conceal']['prefix']:.2f} dB, "
        f"skip {summary['conceal']['skip']:.2f} dB: **{better}** is better.\n"
    )


def write_markdown(
    path: Path,
    summary: dict[str, Any],
    table: dict[Key, Stats],
    subjects: list[str],
    profile: Profile,
    facts: list[dict[str, Any]],
    conceal_rows: list[dict[str, Any]],
) -> None:
    md = _intro(summary, profile, facts) + _equal_bytes(summary) + _sweeps(table, subjects)
    md += _expected(summary, table, subjects) + _concealment(summary, conceal_rows)
    write_md(path, "Packet loss at equal bytes: SIREN, SPINR, protected SPINR, progressive JPEG", md)
