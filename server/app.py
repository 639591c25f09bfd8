"""The FastAPI application: ``create_app(settings)`` builds it; nothing happens at import time.

Handlers that touch the disk or decode (SQLite, images, previews) are plain ``def`` functions, which
FastAPI runs in its thread pool, so the event loop only moves bytes. Training runs in worker
processes (server.jobs). See docs/API.md for the contract.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import threading
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codec import __version__
from codec.bitstream import Bitstream, load_bitstream
from codec.decoder import ProgressiveDecoder, parse_size
from codec.describe import describe_stream
from codec.errors import BitstreamError, ConfigError, ImageError
from codec.image import SUPPORTED_FORMATS, load_image, png_bytes
from codec.options import EncodeOption
from server.jobs import JobManager
from server.options import JobForm, api_config, job_options, server_options
from server.settings import Settings
from server.states import IllegalTransition, JobState
from server.store import QueueFull, Store, StoreError
from streaming.session import SessionError, StreamSession, channel_config, parse_have

log = logging.getLogger("spinr.server")

FORM_OVERHEAD = 1024 * 1024
"""Bytes a multipart request may carry beyond the image itself (boundaries, option fields)."""
WS_POLICY_VIOLATION = 1008
WS_UNKNOWN_ID = 4404
WS_NOT_FINISHED = 4409
START_FIELDS = {"type", "channel", "have"}


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413: at once when Content-Length says so, and
    while reading when the body is chunked, so an upload never fills the disk or memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = JSONResponse(
                {"detail": f"request body is {int(length)} bytes; uploads are limited to {self.limit} bytes"},
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body is over the limit of {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class BitstreamCache:
    """Parsed bitstreams of finished images (immutable, so keyed by id and checksum)."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple[str, str], Bitstream] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, store: Store, job_id: str) -> Bitstream:
        info = store.file_info(job_id, "bitstream")
        if info is None:
            raise StoreError(f"no bitstream is recorded for image {job_id}")
        key = (job_id, info["sha256"])
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        bs, _ = load_bitstream(store.read_file(job_id, "bitstream"), strict=True)
        with self._lock:
            self._items[key] = bs
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return bs


def jpeg_at_most(rgb_png: bytes, limit: int) -> tuple[tuple[bytes, int] | None, int]:
    """(baseline JPEG, quality) of the highest quality (1..100) whose size is <= ``limit``, or None;
    and the smallest size seen (what quality 1 gives, when nothing fits)."""
    img = Image.open(io.BytesIO(rgb_png)).convert("RGB")

    def encode(q: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q, optimize=False, progressive=False)
        return buf.getvalue()

    lo, hi, best, smallest = 1, 100, None, 1 << 62
    while lo <= hi:  # JPEG size grows with quality (monotone enough for a binary search)
        mid = (lo + hi) // 2
        data = encode(mid)
        smallest = min(smallest, len(data))
        if len(data) <= limit:
            best, lo = (data, mid), mid + 1
        else:
            hi = mid - 1
    return best, smallest


def _field_message(err: dict[str, Any]) -> str:
    loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form")]
    name = ".".join(loc) or "request"
    text = f"{name}: {err.get('msg', 'invalid')}"
    if "input" in err and err["input"] is not None and err.get("type") != "missing":
        text += f" (got {err['input']!r})"
    return text


def _ws_reason(text: str) -> str:
    """Close reasons are at most 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


class Services:
    """What the handlers share; filled in when the app starts (lifespan), emptied when it stops."""

    store: Store
    manager: JobManager
    cache: BitstreamCache
    options: tuple[EncodeOption, ...]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or Settings()).validate()
    svc = Services()
    svc.options = server_options(settings)
    # Pillow's own bomb guard, in step with ours (it warns above the limit and refuses above twice it).
    Image.MAX_IMAGE_PIXELS = settings.max_pixels

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        svc.store = Store(settings.data_dir)
        svc.manager = JobManager(svc.store, settings)
        svc.cache = BitstreamCache()
        recovered = svc.manager.start()
        log.info(
            "server started",
            extra={
                "data_dir": str(settings.data_dir),
                "failed_by_restart": recovered["failed"],
                "requeued": recovered["requeued"],
            },
        )
        yield
        await run_in_threadpool(svc.manager.stop)
        svc.store.close()

    app = FastAPI(
        title="spinr",
        version=__version__,
        description="Streaming codec for neural images: upload an image, train its INR in the background, "
        "stream it layer by layer through a simulated channel.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": "; ".join(_field_message(e) for e in exc.errors())}, status_code=422)

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)}
        )

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error", extra={"path": request.url.path, "reason": str(exc)})
        return JSONResponse({"detail": str(exc)}, status_code=500)

    def job_or_404(job_id: str) -> dict[str, Any]:
        job = svc.store.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job or image with id {job_id!r}")
        return job

    def finished_or_409(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job["state"] != JobState.DONE.value:
            raise HTTPException(409, f"image {job_id} is not finished: its job is {job['state']}")
        return job

    # -- service --------------------------------------------------------------------------------
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        workers = svc.manager.workers
        return {
            "status": "ok",
            "version": __version__,
            "device": svc.manager.device or settings.device,
            "workers": {"ready": sum(w.ready for w in workers), "total": len(workers)},
            "jobs": svc.manager.counts(),
        }

    @app.get("/api/config", tags=["service"])
    def config() -> dict[str, Any]:
        """Limits, presets and every option a job may set, for clients that build forms."""
        return {"version": __version__, **api_config(settings, svc.options)}

    # -- jobs -----------------------------------------------------------------------------------
    @app.post(
        "/api/jobs",
        status_code=202,
        tags=["jobs"],
        responses={
            413: {"description": "upload too large"},
            415: {"description": "unsupported image format"},
            422: {"description": "bad option, unreadable image or too many pixels"},
            429: {"description": "too many queued jobs (see Retry-After)"},
        },
    )
    def create_job(
        file: Annotated[UploadFile, File(description=f"the image: {', '.join(SUPPORTED_FORMATS)}")],
        form: Annotated[JobForm, Form()],  # type: ignore[valid-type]
    ) -> JSONResponse:
        svc.manager.check_capacity()
        data = file.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"image upload is over the limit of {settings.max_upload_bytes} bytes")
        try:
            options = job_options(form.model_dump(exclude={"name"}), svc.options, settings.preset)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        _probe_image(data, settings.max_pixels)
        try:
            rgb = load_image(data, settings.max_pixels)
        except ImageError as exc:
            raise HTTPException(422, str(exc)) from None
        name = form.name  # type: ignore[attr-defined]
        job_id = secrets.token_hex(8)
        job_name = name or Path(file.filename or "image").name
        h, w = rgb.shape[:2]
        job = svc.manager.submit(job_id, job_name, options, w, h, png_bytes(rgb))
        return JSONResponse(job, status_code=202, headers={"Location": f"/api/jobs/{job_id}"})

    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs() -> dict[str, Any]:
        return {"jobs": svc.store.list_jobs()}

    @app.get("/api/jobs/{job_id}", tags=["jobs"], responses={404: {"description": "unknown id"}})
    def get_job(job_id: str) -> dict[str, Any]:
        return job_or_404(job_id)

    @app.delete(
        "/api/jobs/{job_id}",
        tags=["jobs"],
        responses={404: {"description": "unknown id"}, 409: {"description": "already finished"}},
    )
    def cancel_job(job_id: str) -> dict[str, Any]:
        job_or_404(job_id)
        try:
            return svc.manager.cancel(job_id)
        except IllegalTransition as exc:
            raise HTTPException(
                409,
                f"job {job_id} is already {exc.current.value}; only queued or running jobs can be cancelled",
            ) from None

    # -- images ---------------------------------------------------------------------------------
    @app.get("/api/images/{job_id}/bitstream.spnr", tags=["images"], response_class=Response)
    def bitstream(job_id: str) -> Response:
        finished_or_409(job_id)
        data = svc.store.read_file(job_id, "bitstream")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{job_id}.spnr"',
                "X-SHA256": svc.store.file_info(job_id, "bitstream")["sha256"],
            },
        )

    @app.get("/api/images/{job_id}/header", tags=["images"])
    def header(job_id: str) -> dict[str, Any]:
        finished_or_409(job_id)
        return describe_stream(svc.cache.get(svc.store, job_id))

    @app.get("/api/images/{job_id}/preview.png", tags=["images"], response_class=Response)
    def preview(
        job_id: str,
        layers: int | None = Query(None, ge=1, description="decode with the first K stages (default all)"),
        size: str | None = Query(None, description="output size WxH (default the original)"),
        scale: float | None = Query(
            None, gt=0, le=64, description="output size as a multiple of the original"
        ),
    ) -> Response:
        finished_or_409(job_id)
        bs = svc.cache.get(svc.store, job_id)
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
        if out is not None and out[0] * out[1] > settings.max_pixels:
            raise HTTPException(
                422, f"preview size {out[0]}x{out[1]} is over the limit of {settings.max_pixels} pixels"
            )
        if out is not None and max(out) > 65535:
            raise HTTPException(422, f"preview size {out[0]}x{out[1]}: each side must be 1..65535")
        depth = None
        if layers is not None:
            if layers > dec.depths:
                raise HTTPException(
                    422, f"layers: {layers} is out of range: this image has 1..{dec.depths} stages"
                )
            depth = layers - 1
        decoded = dec.decode(size=out, depth=depth)
        return Response(
            png_bytes(decoded.rgb),
            media_type="image/png",
            headers={"X-Stages": str(decoded.depth + 1), "X-Units": ",".join(map(str, decoded.units))},
        )

    @app.get("/api/images/{job_id}/original.png", tags=["images"], response_class=Response)
    def original(job_id: str) -> Response:
        job_or_404(job_id)
        return Response(svc.store.read_file(job_id, "original"), media_type="image/png")

    @app.get("/api/images/{job_id}/jpeg", tags=["images"], response_class=Response)
    def jpeg(
        job_id: str, bytes: int = Query(..., ge=1, le=1 << 30, description="largest JPEG size in bytes")
    ) -> Response:  # noqa: A002
        job_or_404(job_id)
        found, smallest = jpeg_at_most(svc.store.read_file(job_id, "original"), bytes)
        if found is None:
            raise HTTPException(
                422,
                f"bytes: {bytes} is too small; the smallest JPEG (quality 1) of this image is {smallest} bytes",
            )
        data, quality = found
        return Response(
            data, media_type="image/jpeg", headers={"X-Quality": str(quality), "X-Bytes": str(len(data))}
        )

    # -- streaming ------------------------------------------------------------------------------
    @app.websocket("/ws/stream/{job_id}")
    async def stream(ws: WebSocket, job_id: str) -> None:
        await ws.accept()
        job = await run_in_threadpool(svc.store.get_job, job_id)
        if job is None:
            await ws.close(WS_UNKNOWN_ID, _ws_reason(f"no image with id {job_id!r}"))
            return
        if job["state"] != JobState.DONE.value:
            await ws.close(
                WS_NOT_FINISHED, _ws_reason(f"image {job_id} is not finished: its job is {job['state']}")
            )
            return
        try:
            message = await asyncio.wait_for(ws.receive(), settings.stream_start_timeout)
        except asyncio.TimeoutError:
            await ws.close(
                WS_POLICY_VIOLATION,
                _ws_reason(f"no start message within {settings.stream_start_timeout:g} s"),
            )
            return
        if message["type"] == "websocket.disconnect":
            return
        try:
            bs = await run_in_threadpool(svc.cache.get, svc.store, job_id)
            session = _start_session(message, bs)
        except SessionError as exc:
            await ws.close(WS_POLICY_VIOLATION, _ws_reason(str(exc)))
            return
        except StoreError as exc:
            await ws.close(1011, _ws_reason(str(exc)))
            return
        try:
            async for msg in session.messages(pace=True):
                await ws.send_bytes(msg.data)
            await ws.send_text(json.dumps(session.summary.to_message()))
            await ws.close(1000)
        except Exception as exc:  # the client went away mid-stream: nothing to clean up
            log.info("stream ended early", extra={"job": job_id, "reason": repr(exc)})
            return
        log.info("stream done", extra={"job": job_id, **session.summary.to_message()})

    # -- browser client -------------------------------------------------------------------------
    web_dir = settings.web_dir or Path(__file__).resolve().parents[1] / "client" / "web"
    if web_dir.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        def root() -> dict[str, str]:
            return {"service": "spinr", "docs": "/docs", "health": "/health"}

    return app


def _probe_image(data: bytes, max_pixels: int) -> None:
    """415 for what is not an image of a supported format; 422 for a pixel count over the limit
    (read from the header alone, before any pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt, (w, h) = img.format, img.size
    except Image.DecompressionBombError as exc:
        raise HTTPException(422, f"image is too large: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(
            415,
            f"the upload is not an image in a supported format; use one of {', '.join(SUPPORTED_FORMATS)}",
        ) from None
    if fmt not in SUPPORTED_FORMATS:
        raise HTTPException(
            415, f"image format {fmt} is not supported; use one of {', '.join(SUPPORTED_FORMATS)}"
        )
    if w * h > max_pixels:
        raise HTTPException(422, f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels")


def _start_session(message: dict[str, Any], bs: Bitstream) -> StreamSession:
    """The API's start message -> a session; SessionError names what is malformed."""
    text = message.get("text")
    if text is None:
        raise SessionError("the first message must be a JSON text message of type 'start', not binary")
    try:
        start = json.loads(text)
    except ValueError as exc:
        raise SessionError(f"the first message is not valid JSON: {exc}") from None
    if not isinstance(start, dict):
        raise SessionError(f"the first message must be a JSON object, got {type(start).__name__}")
    if start.get("type") != "start":
        raise SessionError(f"unknown message type {start.get('type')!r}; expected 'start'")
    unknown = sorted(set(start) - START_FIELDS)
    if unknown:
        raise SessionError(
            f"unknown field(s) {', '.join(unknown)} in start; allowed: {', '.join(sorted(START_FIELDS))}"
        )
    channel = channel_config(start.get("channel"))
    have = parse_have(start.get("have"), bs.header.num_units)
    return StreamSession(bs, channel, have)
