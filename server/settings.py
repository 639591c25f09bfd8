"""The server's configuration: one typed dataclass, built by ``spinr serve`` or by a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codec.budget import DEFAULT_BUDGET
from codec.config import PRESETS
from codec.device import DEVICE_CHOICES
from codec.distributed import ENGINES
from codec.errors import ConfigError
from codec.memory import default_limit
from codec.model_options import MODEL_OPTIONS
from server.access import LOOPBACK_HOSTS, check_token
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
    preview_max_work: int = DEFAULT_BUDGET.max_work
    """Decode budget of one preview: output pixels x multiply-adds per pixel, activations included
    (codec/budget.py); over
    it: 422 before anything is decoded. Previews decode in tiles with no cache: memory is one tile
    and the picture."""
    max_queued_jobs: int = 8
    """Jobs waiting for a worker at most; one more is answered 429 with ``Retry-After``."""
    workers: int = 1
    """Training worker processes (each runs one task at a time: one job, or a batch of them)."""
    batch: int = 1
    """Queued jobs of one shape (same image size, options that differ only in the seed) a worker
    trains together as one batch of networks (``codec.batched``); 1 trains one job at a time. On a
    GPU a batch fills the device that one small fit leaves idle; memory grows with it."""
    engine: str = "process"
    """Where the workers train: ``process`` (worker processes on this machine, nothing to install) or
    ``ray`` (actors on a Ray cluster, ``spinr[ray]``; server.engine). Jobs live the same either way."""
    ray_address: str | None = None
    """The Ray cluster to join with ``engine="ray"``: its head's ``host:port`` (the server runs on a
    node of it), or ``auto`` for the cluster of this machine; None starts a private local cluster."""
    ray_cpus: int = 1
    """CPUs Ray reserves for each worker; also its torch threads."""
    ray_gpus: float | None = None
    """GPUs Ray reserves for each worker (Ray's ``num_gpus``; 0.25: four workers share one GPU);
    None: none on ``device="cpu"`` or a cluster without GPUs, else its GPUs shared by the workers."""
    max_job_memory: int = 0
    """Bytes one training job may use (codec.memory's estimate); a job over it trains on pixel
    batches when that fits, else is refused (422 naming the numbers). 0: half of this machine's
    memory (or its cgroup's limit) shared by the workers."""
    device: str = "auto"
    """Training device for the workers: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    preset: str = "quick"
    """Encode preset a job starts from; form fields override its values."""
    web_dir: Path | None = None
    """Static browser client served at ``/``; None uses the one shipped in the spinr package
    (``client/web``, found through ``importlib.resources``) when it is installed."""
    stream_start_timeout: float = 30.0
    """Seconds a WebSocket client has to send its ``start`` message."""
    max_streams: int = 1024
    """WebSocket streams open at once; one more is closed with 1013 (try again later)."""
    max_streams_per_client: int = 64
    """Streams open at once from one client address (1013 above it). Behind a relay (the compose
    netsim proxy) every client shares the relay's address: raise it there."""
    max_stream_datagrams: int = 20_000
    """Datagrams (fragments included) the channel simulation of one stream may handle: a small
    ``mtu`` on a large stream is refused (1008) naming the smallest MTU that fits."""
    max_stream_seconds: float = 600.0
    """Longest a stream may take to deliver (its channel's delay, jitter and bandwidth); longer: 1008."""
    token: str | None = None
    """Token that uploads, cancels and streams need (``Authorization: Bearer``; docs/API.md); None:
    none needed. ``spinr serve --token`` or ``SPINR_TOKEN``."""
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    """Host names the server answers to (others: 400, against DNS rebinding); ``*``: any."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (``https://example.org``) whose pages may use the server besides its own; ``*``: any."""
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
        self.allowed_hosts = tuple(self.allowed_hosts)
        self.allowed_origins = tuple(self.allowed_origins)

    @property
    def job_memory(self) -> int:
        """The memory limit per job in bytes (``max_job_memory``, or its automatic value)."""
        return self.max_job_memory or default_limit(self.workers)

    def validate(self) -> Settings:
        if self.max_upload_bytes < 1:
            raise ConfigError(f"max_upload_bytes {self.max_upload_bytes} must be >= 1")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels {self.max_pixels} must be >= 1")
        if self.preview_max_work < 1:
            raise ConfigError(f"preview_max_work {self.preview_max_work} must be >= 1")
        if not 0 <= self.max_queued_jobs <= 100_000:
            raise ConfigError(f"max_queued_jobs {self.max_queued_jobs} is out of range: allowed 0..100000")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers {self.workers} is out of range: allowed 1..64")
        if not 1 <= self.batch <= 64:
            raise ConfigError(f"batch {self.batch} is out of range: allowed 1..64")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.ray_address or self.ray_gpus is not None):
            raise ConfigError("ray_address and ray_gpus need engine 'ray' (--engine ray)")
        if not 1 <= self.ray_cpus <= 256:
            raise ConfigError(f"ray_cpus {self.ray_cpus} is out of range: allowed 1..256")
        g = self.ray_gpus
        if g is not None and not (0 <= g <= 1 or (g == int(g) and g <= 64)):
            raise ConfigError(f"ray_gpus {g} is out of range: allowed a share 0..1 or whole GPUs up to 64")
        if self.device.split(":", 1)[0] not in DEVICE_CHOICES:
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        for name in ("max_streams", "max_streams_per_client", "max_stream_datagrams"):
            if not 1 <= getattr(self, name) <= 10_000_000:
                raise ConfigError(f"{name} {getattr(self, name)} is out of range: allowed 1..10000000")
        if not 0 < self.max_stream_seconds <= 1e7:
            raise ConfigError(
                f"max_stream_seconds {self.max_stream_seconds} is out of range: allowed (0, 1e7]"
            )
        if self.max_job_memory < 0:
            raise ConfigError(f"max_job_memory {self.max_job_memory} must be >= 0 (0: automatic)")
        self.token = check_token(self.token)
        if not self.allowed_hosts:
            raise ConfigError("allowed_hosts is empty: the server would answer no request; give names or '*'")
        table = server_options(self)  # a cap outside the codec's range or an unknown model: ConfigError
        try:
            job_options({}, table, self.preset)
        except ConfigError as exc:
            raise ConfigError(f"preset {self.preset!r} does not fit this server's limits: {exc}") from None
        return self
