"""``/api/jobs``: upload an image to encode, follow and cancel its job."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

from codec.errors import ConfigError, ImageError
from codec.image import SUPPORTED_FORMATS, load_image, png_bytes
from server.jobs import encode_config
from server.options import JobForm, job_options
from server.plan import plan_job
from server.probe import probe_image
from server.services import Job, ServicesDep
from server.states import IllegalTransition

router = APIRouter(tags=["jobs"])


@router.post(
    "/api/jobs",
    status_code=202,
    responses={
        413: {"description": "upload too large"},
        415: {"description": "unsupported image format"},
        422: {"description": "bad option, unreadable image or too many pixels"},
        429: {"description": "too many queued jobs (see Retry-After)"},
    },
)
def create_job(
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description=f"the image: {', '.join(SUPPORTED_FORMATS)}")],
    form: Annotated[JobForm, Form()],  # type: ignore[valid-type]
) -> JSONResponse:
    settings = svc.settings
    svc.manager.check_capacity()
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"image upload is over the limit of {settings.max_upload_bytes} bytes")
    fields = form.model_dump()  # type: ignore[attr-defined]
    name = fields.pop("name")
    try:
        options = job_options(fields, svc.options, settings.preset)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    width, height = probe_image(data, settings.max_pixels)
    try:  # before decoding: the header's size is enough to plan the job and know whether it fits
        cfg = encode_config(options, "cpu")
        cap = settings.option_caps.get("width")
        cap_width = None if cap is None else int(cap)
        options, plan = plan_job(cfg, options, width, height, settings.job_memory, cap_width)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        rgb = load_image(data, settings.max_pixels)
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None
    job_id = secrets.token_hex(8)
    h, w = rgb.shape[:2]
    job_name = name or Path(file.filename or "image").name
    job = svc.manager.submit(job_id, job_name, options, w, h, png_bytes(rgb), plan)
    return JSONResponse(job, status_code=202, headers={"Location": f"/api/jobs/{job_id}"})


@router.get("/api/jobs")
def list_jobs(svc: ServicesDep) -> dict[str, Any]:
    return {"jobs": svc.store.list_jobs()}


@router.get("/api/jobs/{job_id}", responses={404: {"description": "unknown id"}})
def get_job(job: Job) -> dict[str, Any]:
    return job


@router.delete(
    "/api/jobs/{job_id}",
    responses={404: {"description": "unknown id"}, 409: {"description": "already finished"}},
)
def cancel_job(job: Job, svc: ServicesDep) -> dict[str, Any]:
    try:
        return svc.manager.cancel(job["id"])
    except IllegalTransition as exc:
        raise HTTPException(
            409,
            f"job {job['id']} is already {exc.current.value}; only queued or running jobs can be cancelled",
        ) from None
