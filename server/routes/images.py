"""``/api/images/{id}/...``: a finished image's bitstream, header, previews, original and a JPEG of
the same size budget."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from codec.decoder import ProgressiveDecoder, parse_size
from codec.describe import describe_stream
from codec.errors import BitstreamError
from codec.image import png_bytes
from server.jpeg import jpeg_at_most
from server.services import FinishedJob, Job, ServicesDep

router = APIRouter(tags=["images"])
MAX_SIDE = 65535


@router.get("/api/images/{job_id}/bitstream.spnr", response_class=Response)
def bitstream(job: FinishedJob, svc: ServicesDep) -> Response:
    job_id = job["id"]
    data = svc.store.read_file(job_id, "bitstream")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{job_id}.spnr"',
            "X-SHA256": svc.store.file_info(job_id, "bitstream")["sha256"],
        },
    )


@router.get("/api/images/{job_id}/header")
def header(job: FinishedJob, svc: ServicesDep) -> dict[str, Any]:
    return describe_stream(svc.cache.get(svc.store, job["id"]))


@router.get("/api/images/{job_id}/preview.png", response_class=Response)
def preview(
    job: FinishedJob,
    svc: ServicesDep,
    layers: int | None = Query(None, ge=1, description="decode with the first K stages (default all)"),
    size: str | None = Query(None, description="output size WxH (default the original)"),
    scale: float | None = Query(None, gt=0, le=64, description="output size as a multiple of the original"),
) -> Response:
    bs = svc.cache.get(svc.store, job["id"])
    dec = ProgressiveDecoder.from_bitstream(bs)
    if size is not None and scale is not None:
        raise HTTPException(422, "size and scale: give one of them, not both")
    out: tuple[int, int] | None = None
    if size is not None:
        try:
            out = parse_size(size)
        except BitstreamError as exc:
            raise HTTPException(422, f"size: {exc}") from None
    elif scale is not None:
        out = (max(1, round(bs.header.width * scale)), max(1, round(bs.header.height * scale)))
    max_pixels = svc.settings.max_pixels
    if out is not None and out[0] * out[1] > max_pixels:
        raise HTTPException(422, f"preview size {out[0]}x{out[1]} is over the limit of {max_pixels} pixels")
    if out is not None and max(out) > MAX_SIDE:
        raise HTTPException(422, f"preview size {out[0]}x{out[1]}: each side must be 1..{MAX_SIDE}")
    if layers is not None and layers > dec.depths:
        raise HTTPException(422, f"layers: {layers} is out of range: this image has 1..{dec.depths} stages")
    decoded = dec.decode(size=out, depth=layers)
    return Response(
        png_bytes(decoded.rgb),
        media_type="image/png",
        headers={"X-Stages": str(decoded.depth), "X-Units": ",".join(map(str, decoded.units))},
    )


@router.get("/api/images/{job_id}/original.png", response_class=Response)
def original(job: Job, svc: ServicesDep) -> Response:
    return Response(svc.store.read_file(job["id"], "original"), media_type="image/png")


@router.get("/api/images/{job_id}/jpeg", response_class=Response)
def jpeg(
    job: Job,
    svc: ServicesDep,
    budget: int = Query(..., alias="bytes", ge=1, le=1 << 30, description="largest JPEG size in bytes"),
) -> Response:
    found, smallest = jpeg_at_most(svc.store.read_file(job["id"], "original"), budget)
    if found is None:
        raise HTTPException(
            422,
            f"bytes: {budget} is too small; the smallest JPEG (quality 1) of this image is {smallest} bytes",
        )
    data, quality = found
    return Response(
        data, media_type="image/jpeg", headers={"X-Quality": str(quality), "X-Bytes": str(len(data))}
    )
