"""What the routes share, kept on ``app.state.services``, and the FastAPI dependencies that hand it
(and the job a path names) to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from codec.options import EncodeOption
from server.cache import BitstreamCache
from server.jobs import JobManager
from server.settings import Settings
from server.states import JobState
from server.store import Store
from server.streams import StreamLimits


@dataclass
class Services:
    """Built by ``create_app``; the store, the job manager and the cache are filled in when the app
    starts (its lifespan) and closed when it stops."""

    settings: Settings
    options: tuple[EncodeOption, ...]
    """The encode options a job may set, narrowed by the settings (server.options)."""
    store: Store = field(init=False)
    manager: JobManager = field(init=False)
    cache: BitstreamCache = field(init=False)
    streams: StreamLimits = field(init=False)


def get_services(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def job_or_404(job_id: str, svc: ServicesDep) -> dict[str, Any]:
    job = svc.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job or image with id {job_id!r}")
    return job


def finished_or_409(job: Annotated[dict[str, Any], Depends(job_or_404)]) -> dict[str, Any]:
    if job["state"] != JobState.DONE.value:
        raise HTTPException(409, f"image {job['id']} is not finished: its job is {job['state']}")
    return job


Job = Annotated[dict[str, Any], Depends(job_or_404)]
"""The job (or image) the path's ``job_id`` names; 404 when there is none."""
FinishedJob = Annotated[dict[str, Any], Depends(finished_or_409)]
"""The same, 409 unless its job is done."""
