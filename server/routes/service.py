"""``/health`` and ``/api/config``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from codec import __version__
from server.options import api_config
from server.services import ServicesDep

router = APIRouter(tags=["service"])


@router.get("/health")
def health(svc: ServicesDep) -> dict[str, Any]:
    workers = svc.manager.workers
    return {
        "status": "ok",
        "version": __version__,
        "device": svc.manager.device or svc.settings.device,
        "workers": {
            "ready": sum(w.ready for w in workers),
            "total": len(workers),
            "threads": [w.threads for w in workers],
            "batch": svc.settings.batch,
            "engine": svc.settings.engine,
        },
        "jobs": svc.manager.counts(),
        "streams": {
            "open": svc.streams.total,
            "max": svc.streams.max_streams,
            "planning": len(svc.streams.channels.flights),
        },
    }


@router.get("/api/config")
def config(svc: ServicesDep) -> dict[str, Any]:
    """Limits, presets and every encode option a job may set, for clients that build forms."""
    return {"version": __version__, **api_config(svc.settings, svc.options)}
