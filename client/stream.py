"""``spinr stream URL_OR_ID --out DIR``: receive an image layer by layer, a PNG after each layer.

The connection is resumed when it drops: the client reconnects and lists the units it holds in
``have``, so only what is missing is sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from client.codec_cmds import emit_json
from client.remote import DEFAULT_SERVER, ServerError, add_token_argument, auth_headers, ws_base
from client.upload import read_image, send
from codec.config import PRESETS
from codec.errors import ConfigError, SpinrError
from codec.outputs import output_folder
from streaming.feedback import Reporter, receive_reporting

FATAL_CLOSE = {
    1008: "the server refused the request",
    4401: "the server needs its token (--token or SPINR_TOKEN)",
    4403: "the server refused this client",
    4404: "unknown image",
    4409: "image not finished",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from netsim.cli import add_channel_arguments

    p.add_argument(
        "target",
        metavar="URL_OR_ID",
        nargs="?",
        help="image id, or a ws://host:port/ws/stream/ID URL (or give --upload instead)",
    )
    p.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"server URL for an id (default {DEFAULT_SERVER})"
    )
    p.add_argument(
        "--upload",
        type=Path,
        metavar="IMAGE",
        help="upload this image to --server first, wait for its bitstream, then stream it",
    )
    p.add_argument(
        "--upload-preset",
        choices=sorted(PRESETS),
        default=None,
        help="encode preset for --upload (default: the server's)",
    )
    p.add_argument(
        "--via",
        metavar="WS_URL",
        help="stream through this relay instead of --server, e.g. a spinr netsim proxy at ws://proxy:8001",
    )
    p.add_argument(
        "--out", required=True, type=Path, help="folder for the PNGs (one per layer, and final.png)"
    )
    p.add_argument("--ref", default=None, help="reference image: report PSNR per layer")
    p.add_argument(
        "--retries", type=int, default=5, help="reconnect attempts after a dropped connection (default 5)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the per-layer timeline as one JSON object on stdout"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    abr = p.add_argument_group("adaptive bitrate (protocol version 2: the client reports what arrived)")
    abr.add_argument("--abr", action="store_true", help="let the server's ABR controller choose what to send")
    abr.add_argument(
        "--pull",
        action="store_true",
        help="client-driven: fetch the packet index and pull, over HTTP, the packets this client's own"
        " controller chooses (refinement vs new layer vs nothing)",
    )
    abr.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="S",
        help="with --abr or --pull: the best picture by S seconds",
    )
    abr.add_argument(
        "--budget",
        type=int,
        default=None,
        metavar="BYTES",
        help="with --abr or --pull: the best picture for BYTES bytes",
    )
    add_token_argument(p)
    add_channel_arguments(p)


def stream_url(target: str, server: str) -> str:
    if target.startswith(("ws://", "wss://")):
        return target
    if target.startswith(("http://", "https://")):
        raise ServerError(
            f"{target!r}: give an image id or a ws:// stream URL (e.g. ws://127.0.0.1:8000/ws/stream/ID)"
        )
    if not target or "/" in target:
        raise ServerError(f"{target!r} is not an image id")
    return f"{ws_base(server)}/ws/stream/{target}"


def channel_dict(args: argparse.Namespace) -> dict[str, Any] | None:
    """The channel options that differ from a perfect link, as the API's ``channel`` object."""
    from netsim.channel import ChannelConfig
    from netsim.cli import channel_config_from_args

    try:
        cfg = channel_config_from_args(args)
    except ValueError as exc:  # netsim's ChannelConfigError names the flag and the allowed range
        raise ConfigError(f"bad channel option: {exc}") from None
    if cfg is None:
        return None
    values = cfg.to_dict()  # JSON-shaped: a trace as its rows
    default = ChannelConfig().to_dict()
    changed = {k: v for k, v in values.items() if v != default.get(k)}
    return changed or None


class StreamProgress:
    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=0,
                desc="stream",
                unit="layer",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
                disable=None,
            )

    def update(self, receiver: Any, entry: Any) -> None:
        if self.bar is None:
            return
        self.bar.total = receiver.num_units
        self.bar.n = len(receiver.have)
        text = f"{receiver.bytes} B, {receiver.layers} stage(s)"
        if entry.psnr is not None:
            text += f", psnr {entry.psnr:.2f} dB"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def abr_start(args: argparse.Namespace) -> dict[str, Any] | None:
    """The start message's ``abr`` object (None: protocol version 1)."""
    if not args.abr:
        if (args.deadline is not None or args.budget is not None) and not args.pull:
            raise ConfigError("--deadline and --budget need --abr or --pull")
        return None
    goal: dict[str, Any] = {}
    if args.deadline is not None:
        if not 0 < args.deadline <= 600:
            raise ConfigError(f"--deadline {args.deadline:g} is out of range; allowed seconds in (0, 600]")
        goal["deadline_s"] = args.deadline
    if args.budget is not None:
        if not 1 <= args.budget <= 2**31:
            raise ConfigError(f"--budget {args.budget} is out of range; allowed 1..{2**31} bytes")
        goal["byte_budget"] = args.budget
    return goal


async def receive(
    args: argparse.Namespace, url: str, receiver: Any, progress: StreamProgress
) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    from codec.image import save_png
    from streaming.session import load_message

    channel = channel_dict(args)
    abr = abr_start(args)
    summaries: list[dict[str, Any]] = []
    written: list[str] = []
    reconnects = 0
    connected = False
    while True:
        start: dict[str, Any] = {"type": "start"}
        if channel:
            start["channel"] = channel
        if receiver.have:
            start["have"] = sorted(receiver.have)
        if abr is not None:
            start["version"] = 2
            if abr:
                start["abr"] = abr
        lost: str | None = None
        done = False
        try:
            async with connect(
                url,
                max_size=None,
                open_timeout=10,
                close_timeout=2,
                additional_headers=auth_headers(args.token),
            ) as ws:
                connected = True
                await ws.send(json.dumps(start))
                async for message in receive_reporting(ws, Reporter() if abr is not None else None):
                    if isinstance(message, str):
                        msg = load_message(message, "server's text message")
                        if isinstance(msg, dict) and msg.get("type") == "done":
                            summaries.append(msg)
                            done = True
                        continue
                    entry = receiver.feed(message)
                    progress.update(receiver, entry)
                    if entry.new_unit and receiver.picture() is not None:
                        name = f"layer-{len(written) + 1:02d}.png"
                        save_png(args.out / name, receiver.picture().rgb)
                        written.append(name)
        except InvalidURI as exc:
            raise ServerError(f"{url!r} is not a WebSocket URL: {exc}") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            reason = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
            if code in FATAL_CLOSE:
                raise ServerError(f"{FATAL_CLOSE[code]} (close {code}): {reason}") from None
            lost = f"close {code} {reason}".strip()
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            lost = f"cannot connect: {exc}" if not connected else f"{type(exc).__name__}: {exc}"
        if done and lost is None:
            break
        if lost is None:
            lost = "the server closed the stream before it was done"
        if receiver.complete:
            break  # every unit is in: nothing to resume
        reconnects += 1
        if reconnects > args.retries:
            raise ServerError(
                f"connection to {url} lost {reconnects} times ({lost}); giving up with "
                f"{len(receiver.have)}/{receiver.num_units} units"
            )
        progress.note(f"spinr stream: connection lost ({lost}); resuming with {len(receiver.have)} unit(s)")
        await asyncio.sleep(min(2.0, 0.1 * 2**reconnects))
    if receiver.header is None or receiver.picture() is None:
        raise ServerError(
            "the stream ended before anything decodable arrived (header or first stage missing)"
        )
    save_png(args.out / "final.png", receiver.picture().rgb)
    dropped = sorted({u for s in summaries for u in s.get("dropped", [])})
    return {"summaries": summaries, "written": written, "reconnects": reconnects, "server_dropped": dropped}


def run(args: argparse.Namespace) -> int:
    from codec.image import load_image
    from streaming.receiver import Receiver

    if args.retries < 0:
        raise SpinrError(f"--retries {args.retries} must be >= 0")
    if (args.target is None) == (args.upload is None):
        raise ConfigError("give the image to stream: an id or ws:// URL, or --upload IMAGE (one of them)")
    if args.upload_preset and args.upload is None:
        raise ConfigError("--upload-preset goes with --upload")
    if args.via is not None and (args.target or "").startswith(("ws://", "wss://")):
        raise ConfigError("--via goes with an image id or --upload, not with a ws:// URL")
    base = args.via or args.server
    if args.pull and (args.abr or args.via or channel_dict(args)):
        raise ConfigError("--pull talks plain HTTP to --server: not with --abr, --via or channel options")
    if args.target is not None and not args.pull:
        url = stream_url(args.target, base)
    channel_dict(args)  # a bad channel option fails here, before connecting
    reference = load_image(args.ref) if args.ref else None
    data = read_image(args.upload) if args.upload is not None else b""
    output_folder(args.out, "--out", quiet=args.quiet)
    if args.upload is not None:
        fields = {"preset": args.upload_preset} if args.upload_preset else {}
        job = send(
            args.server, args.upload.name, data, fields, True, args.quiet or args.json, None, args.token
        )
        if job["state"] != "done":
            raise ServerError(f"job {job['id']} {job['state']}: {job.get('error') or 'no bitstream'}")
        if not args.quiet and not args.json:
            print(f"uploaded {args.upload} as image {job['id']}", file=sys.stderr)
        url = stream_url(job["id"], base)
        args.target = job["id"]
    receiver = Receiver(reference)
    progress = StreamProgress(args.quiet or args.json)
    try:
        if args.pull:
            from client.pull import pull

            url = f"{args.server.rstrip('/')}/api/images/{args.target}/packets"
            out = pull(args, args.target, receiver, progress)
        else:
            out = asyncio.run(receive(args, url, receiver, progress))
    finally:
        progress.close()
    pic = receiver.picture()
    assert pic is not None  # receive() raised when nothing decoded
    last_psnr = next((e.psnr for e in reversed(receiver.timeline) if e.psnr is not None), None)
    result = {
        "url": url,
        "out": str(args.out),
        "final": str(args.out / "final.png"),
        "width": receiver.header.width,
        "height": receiver.header.height,
        "units": receiver.num_units,
        "received": sorted(receiver.have),
        "missing": receiver.missing(),
        "stages": receiver.layers,
        "units_used": pic.units,
        "psnr": None if last_psnr is None else round(last_psnr, 4),
        "bytes": receiver.bytes,
        "rejected": receiver.rejected,
        "reconnects": out["reconnects"],
        "server": out["summaries"],
        "files": out["written"],
        "timeline": [e.to_dict() for e in receiver.timeline],
    }
    if args.json:
        emit_json(result)
    else:
        if args.abr or args.pull:
            for e in result["timeline"]:
                shown = f"{e['psnr']:.2f} dB" if e["psnr"] is not None else ""
                unit = "" if e["unit"] is None else f" {e['unit']}"
                print(f"{e['arrival']:8.3f} s {e['size']:>7} B  {e['kind']}{unit:<4} {shown}")
            abr = (out["summaries"] or [{}])[-1].get("abr") or {}
            if abr:
                verb = "pulled" if args.pull else "sent"
                print(f"abr: {abr.get('stopped')}; {out['summaries'][-1].get('bytes')} bytes {verb}")
        psnr_text = f", PSNR {result['psnr']:.2f} dB" if result["psnr"] is not None else ""
        print(
            f"{result['final']}: {len(result['received'])}/{result['units']} units, {result['stages']} stage(s), "
            f"{result['bytes']} bytes{psnr_text}"
            + (f", missing {result['missing']}" if result["missing"] else "")
            + (f", {result['reconnects']} reconnect(s)" if result["reconnects"] else "")
        )
    return 0
