"""``spinr serve``: run the FastAPI app under uvicorn with JSON logs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from codec.budget import parse_limit
from codec.config import PRESETS
from codec.distributed import add_engine_arguments
from codec.errors import ConfigError
from server.access import LOOPBACK_HOSTS
from server.settings import Settings

WS_MAX_MESSAGE = 64 * 1024
"""Largest WebSocket message a client may send (a start message is a few hundred bytes)."""
GRACEFUL_SHUTDOWN_S = 5
"""Seconds open connections get to finish after SIGTERM before they are cut."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range: allowed 0..65535")
    return value


def _cap(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not name or number != number:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=MAX (e.g. width=512)")
    return name, int(number) if number.is_integer() else number


def _gib(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in GiB above 0 (e.g. 4 or 0.5)")
    return int(value * (1 << 30))


def _names(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


_models = _names
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def allowed_hosts(bind: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    """Loopback names, the address the server listens on (unless it is a wildcard) and ``extra``."""
    own = () if bind in WILDCARD_HOSTS else (bind,)
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, *own, *extra)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument(
        "--data-dir", type=Path, default=Path("spinr-data"), help="database and files (default ./spinr-data)"
    )
    p.add_argument("--device", default=d.device, help="training device: auto (default), cpu, cuda or cuda:N")
    p.add_argument(
        "--max-queued",
        type=int,
        default=d.max_queued_jobs,
        help=f"queued jobs at most (default {d.max_queued_jobs})",
    )
    p.add_argument(
        "--workers", type=int, default=d.workers, help=f"training worker processes (default {d.workers})"
    )
    p.add_argument(
        "--batch",
        type=int,
        default=d.batch,
        help="queued jobs of one shape (image size, options but the seed) a worker trains together"
        f" as one batch (default {d.batch}: one at a time)",
    )
    add_engine_arguments(p, unit="worker", process="worker processes here")
    p.add_argument(
        "--ray-cpus",
        type=int,
        default=d.ray_cpus,
        help=f"with --engine ray: CPUs (and torch threads) of each worker (default {d.ray_cpus})",
    )
    p.add_argument(
        "--max-job-memory",
        type=_gib,
        default=0,
        metavar="GIB",
        help="memory one training job may use, in GiB (default: half of this machine's memory over the "
        "workers); a larger job trains on pixel batches or is refused naming the numbers",
    )
    p.add_argument(
        "--max-upload-bytes",
        type=int,
        default=d.max_upload_bytes,
        help=f"largest upload (default {d.max_upload_bytes})",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=d.max_pixels,
        help=f"largest image in pixels (default {d.max_pixels})",
    )
    for flag, name, what in (
        ("--max-streams", "max_streams", "WebSocket streams open at once"),
        (
            "--max-streams-per-client",
            "max_streams_per_client",
            "streams open at once from one client address",
        ),
        ("--max-stream-datagrams", "max_stream_datagrams", "datagrams one stream's channel may simulate"),
    ):
        p.add_argument(flag, type=int, default=getattr(d, name), help=f"{what} (default {getattr(d, name)})")
    p.add_argument(
        "--preview-max-work",
        type=_limit,
        default=d.preview_max_work,
        metavar="N",
        help=f"decode budget of one preview: pixels x multiply-adds per pixel, activations included "
        f"(default {d.preview_max_work:.3g})",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=d.preset,
        help=f"default encode preset (default {d.preset})",
    )
    caps = " ".join(f"{k}={v}" for k, v in d.option_caps.items())
    p.add_argument(
        "--cap",
        type=_cap,
        action="append",
        default=None,
        metavar="NAME=MAX",
        help=f"largest value a job may give an encode option, below the codec's own range "
        f"(repeatable; each replaces the default for its option; defaults: {caps})",
    )
    p.add_argument(
        "--models",
        type=_models,
        default=d.models,
        help=f"comma-separated models a job may use (default: every registered model, {','.join(d.models)})",
    )
    p.add_argument(
        "--web-dir",
        type=Path,
        default=None,
        help="static browser client to serve at / (default: the one shipped in the package)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SPINR_TOKEN") or None,
        help="token that uploads, cancels and streams need (Authorization: Bearer TOKEN; default: "
        "$SPINR_TOKEN, else none). 16..256 characters of A-Z a-z 0-9 . _ ~ + -",
    )
    for flag, env, what in (
        ("--allowed-hosts", "SPINR_ALLOWED_HOSTS", "Host names the server answers to, besides localhost, "
         "127.0.0.1, ::1 and --host"),
        ("--allowed-origins", "SPINR_ALLOWED_ORIGINS", "web origins (https://example.org) whose pages may "
         "use the server besides its own"),
    ):  # fmt: skip
        p.add_argument(
            flag,
            type=_names,
            default=_names(os.environ.get(env, "")),
            help=f"comma-separated {what} (default: ${env}); '*' for any (docs/API.md, threat model)",
        )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def _limit(text: str) -> int:
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        data_dir=args.data_dir,
        max_upload_bytes=args.max_upload_bytes,
        max_pixels=args.max_pixels,
        preview_max_work=args.preview_max_work,
        max_queued_jobs=args.max_queued,
        max_streams=args.max_streams,
        max_streams_per_client=args.max_streams_per_client,
        max_stream_datagrams=args.max_stream_datagrams,
        workers=args.workers,
        batch=args.batch,
        engine=args.engine,
        ray_address=args.ray_address if args.engine == "ray" else None,
        ray_cpus=args.ray_cpus,
        ray_gpus=args.ray_gpus,
        max_job_memory=args.max_job_memory,
        device=args.device,
        preset=args.preset,
        web_dir=args.web_dir,
        models=args.models,
        token=args.token,
        allowed_hosts=allowed_hosts(args.host, args.allowed_hosts),
        allowed_origins=args.allowed_origins,
        option_caps={**Settings().option_caps, **dict(args.cap or [])},
    ).validate()


def _check_device(device: str) -> None:
    """Fail before listening when CUDA is asked for and absent (``auto`` always works)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device} was asked for but CUDA is not available here; use --device cpu or auto"
            )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from server import logs
    from server.app import create_app
    from server.http_protocol import HttpProtocol
    from server.store import DataDirLock, Store
    from server.ws_protocol import WebSocketProtocol

    settings = settings_from_args(args)
    if settings.engine == "ray":
        from codec.distributed import connect

        connect(settings.ray_address)  # a missing extra or an unreachable cluster: one line, before listening
    else:
        _check_device(settings.device)  # on Ray, the cluster's workers resolve the device
    if args.web_dir is not None and not args.web_dir.is_dir():
        raise ConfigError(f"--web-dir {str(args.web_dir)!r} is not a folder")
    # Held until uvicorn returns: a second server on this folder is refused (one line naming our PID),
    # and a damaged spinr.db is reported here in one line rather than as a traceback from the app's startup.
    with DataDirLock(settings.data_dir):
        Store(settings.data_dir).close()
        logs.configure(args.log_level)
        app = create_app(settings)
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            log_level=args.log_level,
            http=HttpProtocol,
            ws=WebSocketProtocol,
            ws_max_size=WS_MAX_MESSAGE,
            # Packets are entropy-coded already: deflate would not shrink them, yet it cost each
            # stream ~1 ms of the event loop and each connection a zlib state (benchmarks/load.py).
            ws_per_message_deflate=False,
            # Streams notice the shutdown and end at once; this bounds anything that does not.
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    return 0
