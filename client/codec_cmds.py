"""``spinr encode | decode | info | eval``: thin shells over ``codec`` (``demo``: client/demo.py).

Every command checks all its options, its input and where it writes before any work starts
(training, decoding), so a mistake costs a second, not a training run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from client.budget_args import add_budget_options, budget_from_args, budget_hint, flag
from client.compare import classical_at, compare_text
from codec.config import (
    DEFAULT_PRESET,
    ENCODE_OPTIONS,
    PRESETS,
    EncodeConfig,
    apply_overrides,
    option_value,
    preset,
)
from codec.errors import ConfigError
from codec.image import SUPPORTED_FORMATS
from codec.options import EncodeOption
from codec.outputs import output_file


def emit_json(obj: dict[str, Any]) -> None:
    json.dump(obj, sys.stdout, indent=None, separators=(",", ":"), allow_nan=False, default=str)
    sys.stdout.write("\n")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


class ProgressBar:
    """A training progress bar on stderr (tqdm), quiet when asked to be."""

    def __init__(self, total: int, quiet: bool, desc: str = "training") -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False
            )

    def __call__(self, p: Any) -> None:
        if self.bar is None:
            return
        self.bar.n = p.step
        if p.event == "quantize":  # training is done; the bar says what the remaining seconds go to
            self.bar.set_postfix_str(p.note, refresh=False)
        else:
            self.bar.set_postfix_str(f"stage {p.stage + 1}/{p.stages} psnr {p.psnr:.2f} dB", refresh=False)
        self.bar.refresh()
        if p.event == "diverged":
            self.bar.write(f"warning: {p.note}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


ARG_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "choice": str, "str": str}
GROUP_TITLES = {
    "rate": "rate control (unset: the size model's network at the default rate, or --bits for a fixed --width/--depth)",
    "model": "model options",
    "train": "training options",
    "quant": "quantization options",
}


def add_encode_options(p: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per entry of the option table (codec.config.ENCODE_OPTIONS); every
    flag defaults to None (keep the preset's value) and is checked by ``apply_overrides``."""
    default = DEFAULT_PRESET
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=default,
        help=f"starting configuration (default: {default})",
    )
    groups = {g: p.add_argument_group(title) for g, title in GROUP_TITLES.items()}
    for opt in ENCODE_OPTIONS:
        text = f"{opt.help} ({_flag_notes(opt, option_value(PRESETS[default], opt), default)})"
        add_option_flag(groups[opt.group], opt, text)


def add_option_flag(group: Any, opt: EncodeOption, text: str) -> None:
    """The flag of one option of the table, defaulting to None (not given): ``--no-NAME`` too for
    a bool, the choices as its metavar for a choice. A ``%`` in the help is escaped (argparse
    %-formats help strings: "at least 90 %)" crashed ``spinr encode --help``)."""
    text = text.replace("%", "%%")
    if opt.kind == "bool":
        group.add_argument(flag(opt.name), action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else opt.name.upper()
        group.add_argument(flag(opt.name), type=ARG_TYPES[opt.kind], default=None, metavar=metavar, help=text)


def _flag_notes(opt: EncodeOption, start: Any, preset_name: str) -> str:
    """What goes in a flag's help after its text: the models, the range, the preset's value."""
    notes = [f"{', '.join(opt.models)} only"] if opt.models else []
    if opt.kind in ("int", "float"):
        notes.append(opt.allowed())
    if start is None or isinstance(start, bool):
        start = {None: "unset", True: "on", False: "off"}[start]
    notes.append(f"{preset_name}: {start}")
    return "; ".join(notes)


def config_from_args(args: argparse.Namespace) -> EncodeConfig:
    """The preset with the flags applied, every value checked against the option table, and the
    device resolved (CUDA asked for and absent is an error here, before any training)."""
    from codec.device import resolve_device

    cfg = apply_overrides(preset(args.preset), vars(args), flag)
    resolve_device(cfg.train.device)
    return cfg


def announce(cfg: EncodeConfig, image: Any, quiet: bool) -> EncodeConfig:
    """Plan the encode (network, target), estimate its training time on the device and say both on
    stderr; returns the planned config (the encode then runs exactly that)."""
    from codec.device import resolve_device
    from codec.rate import plan_encode
    from codec.timing import estimate_seconds

    h, w = image.shape[:2]
    rate = plan_encode(cfg, w, h)
    if not quiet:
        target = "" if rate.target_bytes is None else f" ({rate.target_bytes * 8 / (w * h):.3g} bpp)"
        seconds = estimate_seconds(rate.cfg, image)
        device = resolve_device(rate.cfg.train.device)
        notes = "".join(f"; {n}" for n in rate.notes)
        print(
            f"{w}x{h}: {rate.describe(notes=False)}{target}; {rate.cfg.train.steps} steps on {device},"
            f" estimated {seconds:.0f} s{notes}",
            file=sys.stderr,
        )
    return rate.cfg


def _encode(args: argparse.Namespace) -> int:
    from codec.bitstream import write_file
    from codec.encode import encode_image
    from codec.image import load_image

    image = load_image(args.image)
    output_file(args.output, "-o", quiet=args.quiet)
    quiet = args.quiet or args.json
    cfg = announce(config_from_args(args), image, quiet)
    bar = ProgressBar(cfg.train.steps, quiet)
    try:
        result = encode_image(image, cfg, progress=bar, meta=args.meta)
    finally:
        bar.close()
    write_file(args.output, result.bitstream)
    summary = result.summary()
    summary["output"] = str(args.output)
    summary["classical"] = classical_at(image, result.bytes)
    if args.json:
        emit_json(summary)
    else:
        target = "" if result.target_bytes is None else f" (target {result.target_bytes})"
        print(
            f"{args.output}: {summary['bytes']} bytes{target}, {summary['bpp']} bpp, PSNR {summary['psnr']:.2f} dB"
            f" (float {summary['psnr_float']:.2f} dB), {summary['params']} params, {summary['packets']} packets,"
            f" {summary['seconds']} s"
        )
        print(compare_text(summary))
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0


def _add_encode(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help=f"input image ({', '.join(SUPPORTED_FORMATS)})")
    p.add_argument("-o", "--output", required=True, type=Path, help="output .spnr file")
    add_encode_options(p)
    p.add_argument(
        "--meta",
        action="store_true",
        help="write the encoder's version, steps and timing into the header (about 70 bytes; not needed to decode)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


encode = SimpleNamespace(add_arguments=_add_encode, run=_encode)


def _size_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--size", help="output size WxH (the representation is continuous)")
    g.add_argument("--scale", type=positive_float, help="output size as a multiple of the encoded size")


def output_size(args: argparse.Namespace, header: Any) -> tuple[int, int] | None:
    from codec.decoder import parse_size

    if args.size:
        return parse_size(args.size)
    if args.scale:
        w, h = max(1, round(header.width * args.scale)), max(1, round(header.height * args.scale))
        if w > 65535 or h > 65535:
            raise ConfigError(f"--scale {args.scale} gives {w}x{h}; each side must be at most 65535")
        return w, h
    return None


def _load_stream(path: Path, lenient: bool, budget: Any = None) -> tuple[Any, list[str]]:
    """The file's bitstream and what the reader skipped (``--lenient``). A strict read that fails
    where a lenient one would not says so, with what ``--lenient`` would keep. The header is held
    to ``budget``'s max_params (default: the default budget's) before any unit is read."""
    from codec.bitstream import read_file
    from codec.budget import DEFAULT_BUDGET, BudgetError
    from codec.errors import BitstreamError

    budget = budget or DEFAULT_BUDGET
    with budget_hint():
        if lenient:
            return read_file(path, False, budget)
        try:
            return read_file(path, True, budget)
        except BudgetError:
            raise
        except BitstreamError as exc:
            try:
                bs, _ = read_file(path, False, budget)
            except BitstreamError:
                raise exc from None
            kept = ", ".join(str(u) for u in sorted(bs.units)) or "none"
            raise BitstreamError(f"{exc} (--lenient decodes what arrived whole: unit(s) {kept})") from None


def missing_report(bs: Any, damaged: list[str]) -> list[str]:
    """One line per damaged record the reader skipped, then the units the stream lacks, by name."""
    lines = [f"damaged: {d}" for d in damaged]
    missing = bs.missing()
    if missing:
        names = ", ".join(f"{u} ({bs.header.units[u].name})" for u in missing)
        lines.append(f"missing {len(missing)} of {bs.header.num_units} unit(s): {names}")
    return lines


def _decode(args: argparse.Namespace) -> int:
    from codec.decoder import ProgressiveDecoder
    from codec.image import save_png

    budget = budget_from_args(args)
    bs, damaged = _load_stream(args.input, args.lenient, budget)
    with budget_hint():
        dec = ProgressiveDecoder.from_bitstream(bs, args.conceal, budget, cache=False)
    if args.layers is not None and not 1 <= args.layers <= dec.depths:
        raise ConfigError(f"--layers {args.layers} is out of range: this stream has 1..{dec.depths} stages")
    size = output_size(args, bs.header)
    output_file(args.output, "-o")
    with budget_hint():
        out = dec.decode(size=size, depth=args.layers)
    save_png(args.output, out.rgb)
    info = {
        "output": str(args.output),
        "width": out.rgb.shape[1],
        "height": out.rgb.shape[0],
        "stages_used": out.depth,
        "stages": dec.depths,
        "units_used": out.units,
        "missing": bs.missing(),
        "damaged": damaged,
    }
    if args.json:
        emit_json(info)
    else:
        print(
            f"{args.output}: {info['width']}x{info['height']}, {out.depth} of {dec.depths} stage(s), "
            f"units {out.units}"
        )
        for line in missing_report(bs, damaged):
            print(f"warning: {line}", file=sys.stderr)
    return 0


def _add_decode(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("-o", "--output", required=True, type=Path, help="output PNG")
    p.add_argument("--layers", type=int, help="decode with the first K stages only (SPINR)")
    _size_args(p)
    p.add_argument(
        "--conceal",
        choices=["prefix", "skip", "theta0"],
        default="prefix",
        help="a missing middle layer: stop before it (prefix), leave it out (skip), or, in a stream coded from"
        " a θ0, use θ0's layer (theta0)",
    )
    p.add_argument(
        "--lenient", action="store_true", help="treat damaged layer packets as missing instead of failing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_budget_options(p)


decode = SimpleNamespace(add_arguments=_add_decode, run=_decode)


def _info(args: argparse.Namespace) -> int:
    from codec.describe import describe_stream

    bs, damaged = _load_stream(args.input, args.lenient, budget_from_args(args))
    info = describe_stream(bs)
    info["damaged"] = damaged
    if args.json:
        emit_json(info)
        return 0
    quant = info.get("quant")
    bits = f"  bits {quant['bits']}{' per-channel' if quant['per_channel'] else ''}" if quant else ""
    print(
        f"format {info['format']}  model {info['model']}  image {bs.header.width}x{bs.header.height}{bits}"
        f"  stream {info['stream_id']}  {info['bytes']} bytes (header packet {info['header_bytes']})"
    )
    print(f"arch {json.dumps(info['arch'])}")
    if bs.header.stage_psnr:
        print("stage PSNR (dB): " + " ".join(f"{p:.2f}" for p in bs.header.stage_psnr))
    if info["meta"]:
        print(f"meta {json.dumps(info['meta'])}")
    # With a rate-quality ladder: the bytes a receiver holds and the PSNR it sees once each packet is in.
    rungs = {i + 1: r for i, r in enumerate(info["ladder"] or [])}  # packet-number order: seq i + 1
    extra = f" {'total':>7} {'PSNR':>7}" if rungs else ""
    print(f"{'seq':>4} {'layer':>5} {'bytes':>7}{extra}  name")
    for p in info["packets"]:
        row = f"{p['seq']:>4} {'-' if p['layer'] is None else p['layer']:>5} {p['bytes']:>7}"
        if rungs:
            r = rungs.get(p["seq"])
            total = info["header_bytes"] + (r["cumulative_bytes"] if r else 0)
            shown = "-" if r is None or r["psnr"] is None else f"{float(r['psnr']):.2f}"
            row += f" {total:>7} {shown:>7}"
        print(f"{row}  {p['name']}")
    if rungs:
        print("(total: bytes received up to this packet; PSNR: ladder, what the picture reaches then)")
        if bs.refinements:
            print("(a refinement row's PSNR: the picture of layers 0..layer, all at that level)")
    for line in missing_report(bs, damaged):
        print(line)
    return 0


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("--lenient", action="store_true", help="list damaged layer packets instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_budget_options(p)


info = SimpleNamespace(add_arguments=_add_info, run=_info)


def _eval(args: argparse.Namespace) -> int:
    from codec.encode import evaluate as evaluate_stream
    from codec.image import load_image

    bs, damaged = _load_stream(args.input, args.lenient, budget_from_args(args))
    with budget_hint():
        result = evaluate_stream(bs, load_image(args.reference), budget_from_args(args))
    result["damaged"] = damaged
    if args.json:
        emit_json(result)
    else:
        print("PSNR by layers (dB): " + " ".join(f"{p:.2f}" for p in result["psnr_by_layers"]))
        print(
            f"PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  {result['bytes']} bytes  {result['bpp']} bpp"
        )
        for line in missing_report(bs, damaged):
            print(f"warning: {line}", file=sys.stderr)
    return 0


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("reference", help="the original image")
    p.add_argument("--lenient", action="store_true", help="evaluate with damaged layer packets missing")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_budget_options(p)


evaluate = SimpleNamespace(add_arguments=_add_eval, run=_eval)
