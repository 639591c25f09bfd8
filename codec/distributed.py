"""Ray, the optional distributed engine (``spinr[ray]``): imported only when a command asks for it
(``spinr serve --engine ray``, ``spinr experiment ... --engine ray``), with one error naming the
extra when it is missing, and one way to join (or start) a cluster for the server and the
experiments alike."""

from __future__ import annotations

import argparse
import os
from typing import Any

from codec.errors import ConfigError

RAY_EXTRA = "pip install 'spinr[ray]' (in a checkout: pip install -c constraints.txt '.[ray]')"
ENGINES = ("process", "ray")
"""Where training runs: ``process`` (processes on this machine) or ``ray`` (a Ray cluster)."""


def add_engine_arguments(parser: argparse.ArgumentParser, *, unit: str, process: str) -> None:
    """``--engine``, ``--ray-address`` and ``--ray-gpus``, one definition for ``spinr serve`` and
    ``spinr experiment``; ``unit`` names what runs on the engine (``worker``, ``fit``) and ``process``
    says what the process engine is for that command."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="process",
        help=f"where {unit}s run: process ({process}, the default) or ray ({unit}s on a Ray cluster; "
        "needs spinr[ray])",
    )
    parser.add_argument(
        "--ray-address",
        default=os.environ.get("SPINR_RAY_ADDRESS") or None,
        metavar="ADDR",
        help="with --engine ray: the cluster's head, host:port, or auto (this machine's cluster; this "
        "command runs on a node of it); default $SPINR_RAY_ADDRESS, else a private local cluster",
    )
    parser.add_argument(
        "--ray-gpus",
        type=float,
        default=None,
        metavar="SHARE",
        help=f"with --engine ray: GPUs Ray reserves for each {unit}, a share 0..1 (0.25: four share one "
        f"GPU; default: the cluster's GPUs shared by the {unit}s, none on --device cpu)",
    )


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError naming the extra that brings it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray, which is not installed ({exc}): {RAY_EXTRA}") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at ``address`` (``host:port`` of its head, or ``auto``: this machine's;
    a Ray driver runs on a node of its cluster), or start a private local one when it is None: never an unrelated cluster
    that happens to run on this machine. Idempotent; returns the ``ray`` module.

    Ray's workers inherit ``OMP_NUM_THREADS=1`` unless it is set: torch in every worker starts at one
    thread (each worker sizes it again to its CPU share: codec.threads)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    common: dict[str, Any] = {"namespace": "spinr", "runtime_env": {"env_vars": env}}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to {where}: {first}") from None
    return ray


def gpu_share(requested: float | None, device: str, sharers: int) -> float:
    """Ray's ``num_gpus`` for each worker or fit: ``requested`` when given, else none on a CPU device
    or a cluster without GPUs, else the cluster's GPUs shared equally by ``sharers`` (a small fit
    leaves most of a GPU idle: several share one). Ray counts fractions in steps of 0.0001."""
    if requested is not None:
        return requested
    if device == "cpu":
        return 0.0
    gpus = float(import_ray().cluster_resources().get("GPU", 0.0))
    return round(min(1.0, gpus / max(1, sharers)), 4) if gpus > 0 else 0.0
