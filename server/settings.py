"""The server's configuration: one typed dataclass, built by ``spinr serve`` or by a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codec.config import PRESETS
from codec.device import DEVICE_CHOICES
from codec.errors import ConfigError
from codec.model_options import MODEL_OPTIONS
from server.options import job_options, server_options

DEFAULT_CAPS: dict[str, float] = {"width": 1024, "depth": 64, "steps": 1_000_000}
"""The default ``Settings.option_caps``: a 1024-wide, 64-deep SIREN has 67 M parameters (1 GB with
Adam's state), a million steps of it hours on a GPU; the codec's own ranges go further."""


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("spinr-data"))
    """Folder holding the SQLite database (``spinr.db``) and every uploaded image and bitstream."""
    max_upload_bytes: int = 20 * 1024 * 1024
    """Largest accepted image upload; bigger requests are answered 413 before their body is read."""
    max_pixels: int = 16_000_000
    """Largest accepted image (width x height), also the limit for preview sizes; over it: 422."""
    max_queued_jobs: int = 8
    """Jobs waiting for a worker at most; one more is answered 429 with ``Retry-After``."""
    workers: int = 1
    """Training worker processes (each runs one job at a time)."""
    device: str = "auto"
    """Training device for the workers: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    preset: str = "quick"
    """Encode preset a job starts from; form fields override its values."""
    web_dir: Path | None = None
    """Static browser client served at ``/``; None uses the one shipped in the spinr package
    (``client/web``, found through ``importlib.resources``) when it is installed."""
    stream_start_timeout: float = 30.0
    """Seconds a WebSocket client has to send its ``start`` message."""
    models: tuple[str, ...] = field(default_factory=lambda: tuple(MODEL_OPTIONS))
    """Models a job may use: by default every registered model (``spinr encode``'s choices), all of
    which the browser client decodes (client/web/codec/arch/); ``spinr serve --models`` narrows it."""
    option_caps: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    """Largest value a job may give these encode options, on top of the codec's own ranges
    (codec.config.ENCODE_OPTIONS allows width 4096, depth 256 and 10^7 steps): they bound the
    memory and time one job takes. ``spinr serve --cap NAME=MAX``."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.web_dir is not None:
            self.web_dir = Path(self.web_dir)
        self.models = tuple(self.models)

    def validate(self) -> Settings:
        if self.max_upload_bytes < 1:
            raise ConfigError(f"max_upload_bytes {self.max_upload_bytes} must be >= 1")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels {self.max_pixels} must be >= 1")
        if not 0 <= self.max_queued_jobs <= 100_000:
            raise ConfigError(f"max_queued_jobs {self.max_queued_jobs} is out of range: allowed 0..100000")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers {self.workers} is out of range: allowed 1..64")
        if self.device.split(":", 1)[0] not in DEVICE_CHOICES:
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        table = server_options(self)  # a cap outside the codec's range or an unknown model: ConfigError
        try:
            job_options({}, table, self.preset)
        except ConfigError as exc:
            raise ConfigError(f"preset {self.preset!r} does not fit this server's limits: {exc}") from None
        return self
