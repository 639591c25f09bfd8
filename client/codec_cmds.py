"""``spinr encode | decode | info | eval | demo``: thin shells over ``codec``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def flag(name: str) -> str:
    """The command-line flag of an encode option: ``precise_bits`` -> ``--precise-bits``."""
    return "--" + name.replace("_", "-")


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
        group = groups[opt.group]
        text = f"{opt.help} ({_flag_notes(opt, option_value(PRESETS[default], opt), default)})"
        if opt.kind == "bool":
            group.add_argument(flag(opt.name), action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else opt.name.upper()
            group.add_argument(
                flag(opt.name), type=ARG_TYPES[opt.kind], default=None, metavar=metavar, help=text
            )


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
    return apply_overrides(preset(args.preset), vars(args), flag)


def announce(cfg: EncodeConfig, image: Any, quiet: bool) -> EncodeConfig:
    """Plan the encode (network, target), estimate its training time on the device and say both on
    stderr; returns the planned config (the encode then runs exactly that)."""
    from codec.rate import plan_encode
    from codec.timing import estimate_seconds

    h, w = image.shape[:2]
    rate = plan_encode(cfg, w, h)
    if not quiet:
        target = "" if rate.target_bytes is None else f" ({rate.target_bytes * 8 / (w * h):.3g} bpp)"
        seconds = estimate_seconds(rate.cfg, image)
        print(
            f"{w}x{h}: {rate.describe()}{target}; {rate.cfg.train.steps} steps on {rate.cfg.train.device},"
            f" estimated {seconds:.0f} s",
            file=sys.stderr,
        )
    return rate.cfg


def classical_at(image: Any, size: int, codecs: tuple[str, ...] = ("jpeg",)) -> dict[str, dict[str, Any]]:
    """PSNR, bytes and setting of each classical codec's best file of at most ``size`` bytes."""
    from codec.classical import at_bytes, decode
    from codec.metrics import psnr

    out = {}
    for codec in codecs:
        found = at_bytes(image, codec, size)
        out[codec] = {
            "psnr": round(psnr(decode(found.data), image), 3),
            "bytes": len(found.data),
            "quality": round(found.quality, 3),
            "fits": found.fits,
        }
    return out


def compare_text(summary: dict[str, Any]) -> str:
    """``JPEG at the same bytes: 25.31 dB (q 40, 1180 bytes)``."""
    parts = []
    for codec, r in summary.get("classical", {}).items():
        note = "" if r["fits"] else ", its smallest file is larger"
        parts.append(
            f"{codec.upper()} {r['psnr']:.2f} dB (quality {r['quality']:g}, {r['bytes']} bytes{note})"
        )
    return "at the same bytes: " + "; ".join(parts) if parts else ""


def _encode(args: argparse.Namespace) -> int:
    from codec.bitstream import write_file
    from codec.encode import encode_image
    from codec.image import load_image

    image = load_image(args.image)
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


def _load_stream(path: Path, lenient: bool) -> tuple[Any, list[str]]:
    from codec.bitstream import load_bitstream
    from codec.errors import BitstreamError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BitstreamError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return load_bitstream(data, strict=not lenient)


def _decode(args: argparse.Namespace) -> int:
    from codec.decoder import ProgressiveDecoder
    from codec.image import save_png

    bs, damaged = _load_stream(args.input, args.lenient)
    dec = ProgressiveDecoder.from_bitstream(bs, conceal=args.conceal)
    depth = None
    if args.layers is not None:
        if not 1 <= args.layers <= dec.depths:
            raise ConfigError(
                f"--layers {args.layers} is out of range: this stream has 1..{dec.depths} stages"
            )
        depth = args.layers - 1
    out = dec.decode(size=output_size(args, bs.header), depth=depth)
    save_png(args.output, out.rgb)
    info = {
        "output": str(args.output),
        "width": out.rgb.shape[1],
        "height": out.rgb.shape[0],
        "stages_used": out.depth + 1,
        "units_used": out.units,
        "missing": bs.missing(),
        "damaged": damaged,
    }
    if args.json:
        emit_json(info)
    else:
        print(
            f"{args.output}: {info['width']}x{info['height']}, {info['stages_used']} stage(s), units {out.units}"
        )
        for d in damaged:
            print(f"warning: {d}", file=sys.stderr)
    return 0


def _add_decode(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("-o", "--output", required=True, type=Path, help="output PNG")
    p.add_argument("--layers", type=int, help="decode with the first K stages only (SPINR)")
    _size_args(p)
    p.add_argument(
        "--conceal", choices=["prefix", "skip"], default="prefix", help="missing middle layer handling"
    )
    p.add_argument(
        "--lenient", action="store_true", help="treat damaged layer packets as missing instead of failing"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")


decode = SimpleNamespace(add_arguments=_add_decode, run=_decode)


def _info(args: argparse.Namespace) -> int:
    from codec.describe import describe_stream

    bs, damaged = _load_stream(args.input, args.lenient)
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
    print(f"{'seq':>4} {'layer':>5} {'bytes':>7}  name")
    for p in info["packets"]:
        print(f"{p['seq']:>4} {'-' if p['layer'] is None else p['layer']:>5} {p['bytes']:>7}  {p['name']}")
    for m in info["missing"]:
        print(f"missing unit {m} ({bs.header.units[m].name})")
    return 0


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("--lenient", action="store_true", help="list damaged layer packets instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")


info = SimpleNamespace(add_arguments=_add_info, run=_info)


def _eval(args: argparse.Namespace) -> int:
    from codec.encode import evaluate as evaluate_stream
    from codec.image import load_image

    bs, damaged = _load_stream(args.input, args.lenient)
    result = evaluate_stream(bs, load_image(args.reference))
    result["damaged"] = damaged
    if args.json:
        emit_json(result)
    else:
        print("PSNR by layers (dB): " + " ".join(f"{p:.2f}" for p in result["psnr_by_layers"]))
        print(
            f"PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  {result['bytes']} bytes  {result['bpp']} bpp"
        )
    return 0


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help=".spnr file")
    p.add_argument("reference", help="the original image")
    p.add_argument("--lenient", action="store_true", help="evaluate with damaged layer packets missing")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")


evaluate = SimpleNamespace(add_arguments=_add_eval, run=_eval)


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from codec.bitstream import write_file
    from codec.decoder import ProgressiveDecoder
    from codec.encode import encode_image
    from codec.image import load_image, save_png

    if args.image:
        image = load_image(args.image)
        source = args.image
    else:
        from skimage import data  # its sample photographs ship inside the wheel: no network

        image = np.ascontiguousarray(data.astronaut()[::4, ::4])  # 128 x 128
        source = "scikit-image astronaut, 128x128"
    print(f"encoding {source}", file=sys.stderr)
    cfg = announce(config_from_args(args), image, False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(cfg.train.steps, args.quiet)
    try:
        result = encode_image(image, cfg, progress=bar)
    finally:
        bar.close()
    write_file(out / "image.spnr", result.bitstream)
    save_png(out / "original.png", image)
    dec = ProgressiveDecoder.from_bitstream(result.bitstream)
    rows: list[dict[str, Any]] = []
    # One PSNR per decodable depth (a single one for a non-progressive model), measured by the encoder.
    for depth, stage_psnr in enumerate(result.stage_psnr):
        name = f"stage-{depth + 1:02d}.png"
        save_png(out / name, dec.decode(depth=depth).rgb)
        rows.append({"stage": depth + 1, "psnr": round(stage_psnr, 3), "file": name})
    save_png(out / "zoom-2x.png", dec.decode(size=(image.shape[1] * 2, image.shape[0] * 2)).rgb)
    save_png(
        out / "strip.png",
        progress_strip([out / r["file"] for r in rows], [f"{r['stage']}: {r['psnr']:.1f} dB" for r in rows]),
    )
    summary = result.summary()
    summary["stages"] = rows
    summary["out"] = str(out)
    summary["classical"] = classical_at(image, result.bytes, ("jpeg", "webp", "jpeg2000", "avif"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for r in rows:
        print(f"stage {r['stage']:>2}: PSNR {r['psnr']:6.2f} dB  {out / r['file']}")
    print(
        f"{out / 'image.spnr'}: {summary['bytes']} bytes ({summary['bpp']} bpp, raw RGB {image.size}),"
        f" PSNR {summary['psnr']:.2f} dB, {summary['params']} params, {summary['seconds']} s"
    )
    print(compare_text(summary))
    return 0


def progress_strip(files: list[Path], labels: list[str], per_row: int = 9) -> Any:
    """The stages side by side with their PSNR under each, as one picture."""
    import numpy as np
    from PIL import Image, ImageDraw

    tiles = [Image.open(f).convert("RGB") for f in files]
    w, h = tiles[0].size
    label_h = 16
    rows = (len(tiles) + per_row - 1) // per_row
    cols = min(per_row, len(tiles))
    sheet = Image.new("RGB", (cols * (w + 4) + 4, rows * (h + label_h + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        x, y = 4 + (i % per_row) * (w + 4), 4 + (i // per_row) * (h + label_h + 4)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + h + 2), label, fill="black")
    return np.asarray(sheet)


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image", nargs="?", help="image to encode (default: a photograph shipped with scikit-image)"
    )
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    add_encode_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(steps=None)


demo = SimpleNamespace(add_arguments=_add_demo, run=_demo)
