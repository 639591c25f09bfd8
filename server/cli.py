"""``spinr serve``: run the FastAPI app under uvicorn with JSON logs."""

from __future__ import annotations

import argparse
from pathlib import Path

from codec.config import PRESETS
from codec.errors import ConfigError
from server.settings import Settings


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


def _models(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


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
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        data_dir=args.data_dir,
        max_upload_bytes=args.max_upload_bytes,
        max_pixels=args.max_pixels,
        max_queued_jobs=args.max_queued,
        workers=args.workers,
        device=args.device,
        preset=args.preset,
        web_dir=args.web_dir,
        models=args.models,
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
    from server.store import DataDirLock, Store

    settings = settings_from_args(args)
    _check_device(settings.device)
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
            ws="websockets-sansio",
        )
    return 0
