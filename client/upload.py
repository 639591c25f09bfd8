"""``spinr upload IMAGE``: send an image to a server, optionally wait for its bitstream."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from client.codec_cmds import emit_json, positive_float
from client.remote import DEFAULT_SERVER, ServerError, check, client, unreachable
from codec.config import PRESETS
from codec.errors import ImageError

POLL_SECONDS = 0.25


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", type=Path, help="image file (PNG, JPEG, WebP, BMP, TIFF)")
    p.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"server URL (default {DEFAULT_SERVER}, or $SPINR_SERVER)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait until the job finishes, with a progress bar on stderr"
    )
    p.add_argument(
        "--timeout", type=positive_float, default=None, help="with --wait: give up after this many seconds"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="starting configuration (default: the server's)",
    )
    p.add_argument("--model", choices=["spinr", "siren"], default=None, help="model (default spinr)")
    p.add_argument("--width", type=int, default=None, help="neurons per hidden layer")
    p.add_argument("--depth", type=int, default=None, help="hidden layers")
    p.add_argument("--steps", type=int, default=None, help="training steps")
    p.add_argument("--bits", type=int, default=None, help="bits per weight, 2..16")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate")
    p.add_argument("--head", choices=["per_stage", "shared"], default=None, help="SPINR readout")
    p.add_argument("--name", default=None, help="job name (default: the file name)")
    p.add_argument("--json", action="store_true", help="print the job as one JSON object on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _fields(args: argparse.Namespace) -> dict[str, str]:
    keys = ("preset", "model", "width", "depth", "steps", "bits", "seed", "lr", "head", "name")
    return {k: str(getattr(args, k)) for k in keys if getattr(args, k) is not None}


def wait_for(http: Any, job_id: str, quiet: bool, timeout: float | None) -> dict[str, Any]:
    """Poll the job until it finishes; the progress bar shows steps, stage and PSNR."""
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=1,
            desc=f"job {job_id}",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            disable=None,
        )
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            job = check(http.get(f"/api/jobs/{job_id}"), f"job {job_id}")
            if bar is not None:
                if job.get("steps"):
                    bar.total = job["steps"]
                bar.n = job.get("step") or 0
                parts = [job["state"]]
                if job.get("stages"):
                    parts.append(f"stage {(job.get('stage') or 0) + 1}/{job['stages']}")
                if job.get("psnr") is not None:
                    parts.append(f"psnr {job['psnr']:.2f} dB")
                bar.set_postfix_str(" ".join(parts), refresh=False)
                bar.refresh()
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ServerError(
                    f"job {job_id} did not finish within {timeout:g} s (it is {job['state']}; it goes on)"
                )
            time.sleep(POLL_SECONDS)
    finally:
        if bar is not None:
            bar.close()


def run(args: argparse.Namespace) -> int:
    import httpx

    try:
        data = args.image.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {str(args.image)!r}: {exc.strerror or exc}") from None
    try:
        with client(args.server) as http:
            files = {"file": (args.image.name, data, "application/octet-stream")}
            job = check(http.post("/api/jobs", files=files, data=_fields(args)), "upload")
            if args.wait:
                try:
                    job = wait_for(http, job["id"], args.quiet or args.json, args.timeout)
                except KeyboardInterrupt:
                    print(
                        f"spinr upload: stopped waiting; job {job['id']} goes on on the server",
                        file=sys.stderr,
                    )
                    return 130
    except httpx.HTTPError as exc:
        raise unreachable(args.server, exc) from None
    if args.json:
        emit_json(job)
    elif job["state"] == "done":
        r = job["result"] or {}
        print(
            f"{job['id']} done: {r.get('bytes')} bytes, {r.get('bpp')} bpp, PSNR {r.get('psnr')} dB, "
            f"{r.get('packets')} packets"
        )
    elif job["state"] in ("queued", "running"):
        print(f"{job['id']} {job['state']}")
    if job["state"] in ("failed", "cancelled"):
        reason = f": {job['error']}" if job.get("error") else ""
        print(f"spinr upload: error: job {job['id']} {job['state']}{reason}", file=sys.stderr)
        return 1
    return 0
