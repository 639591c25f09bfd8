"""``spinr upload IMAGE``: send an image to a server, optionally wait for its bitstream."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from client.codec_cmds import add_option_flag, emit_json, flag, positive_float
from client.remote import DEFAULT_SERVER, ServerError, check, client, unreachable
from codec.config import ENCODE_OPTIONS, PRESETS
from codec.errors import ConfigError, ImageError

UPLOAD_OPTIONS = tuple(o for o in ENCODE_OPTIONS if o.name != "device")
"""The encode options a job may set: the codec's table less the training device, which the server
chooses (``spinr serve --device``)."""

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
    group = p.add_argument_group(
        "encode options (checked here against the codec's ranges, then by the server's limits)"
    )
    for opt in UPLOAD_OPTIONS:
        scope = f"; {', '.join(opt.models)} only" if opt.models else ""
        add_option_flag(group, opt, f"{opt.help} ({opt.allowed()}{scope}; default: the preset's)")
    p.add_argument("--name", default=None, help="job name (default: the file name)")
    p.add_argument("--json", action="store_true", help="print the job as one JSON object on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _fields(args: argparse.Namespace) -> dict[str, str]:
    """The job's form fields: the options given, each checked against the codec's table first, so a
    bad value is refused before the image is sent (the server then applies its own, narrower limits)."""
    out = {k: str(getattr(args, k)) for k in ("preset", "name") if getattr(args, k) is not None}
    for opt in UPLOAD_OPTIONS:
        value = getattr(args, opt.name)
        if value is None:
            continue
        value = opt.check(value, f"{flag(opt.name)}: ")
        if args.model is not None and not opt.applies_to(args.model):
            only = " and ".join(opt.models or ())
            raise ConfigError(f"{flag(opt.name)} applies to the {only} model only, not {args.model!r}")
        out[opt.name] = str(value).lower() if opt.kind == "bool" else str(value)
    return out


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


def read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def send(
    server: str,
    name: str,
    data: bytes,
    fields: dict[str, str],
    wait: bool,
    quiet: bool,
    timeout: float | None,
) -> dict[str, Any]:
    """POST the image as a job; with ``wait``, poll it (a progress bar unless ``quiet``) until it ends.
    KeyboardInterrupt while waiting propagates; the job goes on on the server."""
    import httpx

    try:
        with client(server) as http:
            files = {"file": (name, data, "application/octet-stream")}
            job: dict[str, Any] = check(http.post("/api/jobs", files=files, data=fields), "upload")
            if wait:
                job = wait_for(http, job["id"], quiet, timeout)
    except httpx.HTTPError as exc:
        raise unreachable(server, exc) from None
    return job


def run(args: argparse.Namespace) -> int:
    fields = _fields(args)
    data = read_image(args.image)
    try:
        job = send(
            args.server, args.image.name, data, fields, args.wait, args.quiet or args.json, args.timeout
        )
    except KeyboardInterrupt:
        print("spinr upload: stopped waiting; the job goes on on the server", file=sys.stderr)
        return 130
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
