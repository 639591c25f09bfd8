"""The FastAPI application: ``create_app(settings)`` builds it; nothing happens at import time.

The routes live in ``server.routes`` (service, jobs, images, stream, static) and reach what they
share through ``app.state.services`` (server.services). Handlers that touch the disk or decode
(SQLite, images, previews) are plain ``def`` functions, which FastAPI runs in its thread pool, so
the event loop only moves bytes. Training runs in worker processes (server.jobs). See docs/API.md.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from codec import __version__
from server.access import AccessControl, AccessPolicy
from server.body_limit import FORM_OVERHEAD, BodyLimit
from server.cache import BitstreamCache
from server.errors import install_error_handlers
from server.jobs import JobManager
from server.options import server_options
from server.routes import images, inits, jobs, packets, service, stream
from server.routes.static import mount_web_client
from server.services import Services
from server.settings import Settings
from server.store import Store
from server.streams import StreamLimits

log = logging.getLogger("spinr.server")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store, start the workers (recovering jobs a crash left behind); stop them after."""
    svc: Services = app.state.services
    settings = svc.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    svc.store = Store(settings.data_dir)
    svc.manager = JobManager(svc.store, settings)
    svc.cache = BitstreamCache()
    recovered = svc.manager.start()
    settle_heap()
    log.info(
        "server started",
        extra={
            "data_dir": str(settings.data_dir),
            "failed_by_restart": recovered["failed"],
            "requeued": recovered["requeued"],
        },
    )
    yield
    svc.streams.close()
    await run_in_threadpool(svc.manager.stop)
    svc.store.close()


def settle_heap() -> None:
    """Collect the garbage of startup, then move every object left (modules, the app, the libraries:
    they live as long as the process) out of the garbage collector's sight (``gc.freeze``). Each full
    collection traversed them all: 76-103 ms of the event loop, once every other round of 400 streams
    (every stream's connection leaves a few reference cycles); 18-30 ms once they are frozen."""
    gc.collect()
    gc.freeze()


STREAM_PREFIX = "/ws/stream/"


class SpinrApp(FastAPI):
    """FastAPI with a short way in for ``/ws/stream/{id}``: the access checks, then the stream route.

    A stream's connection otherwise passes nine layers of middleware and two routers, and every
    message it sends goes back out through their wrappers: 0.4 ms of the event loop per stream, a
    third of what it cost (400 streams at once wait for one another's). None of those layers applies
    to a WebSocket (bodies, HTTP exception handlers; an exception still reaches uvicorn, which logs
    it and closes the connection), while the access checks do and stay. Any other path, and one that
    is not ``/ws/stream/`` and one segment, is routed as before (the route is registered too)."""

    stream_entry: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.stream_entry is not None:
            path: str = scope["path"]
            job_id = path[len(STREAM_PREFIX) :]
            if path.startswith(STREAM_PREFIX) and job_id and "/" not in job_id:
                scope["app"] = self
                scope["path_params"] = {"job_id": job_id}
                await self.stream_entry(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _stream_app(scope: Scope, receive: Receive, send: Send) -> None:
    await stream.stream(WebSocket(scope, receive, send))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or Settings()).validate()
    # Pillow's own bomb guard, in step with ours (it warns above the limit and refuses above twice it).
    Image.MAX_IMAGE_PIXELS = settings.max_pixels
    app = SpinrApp(
        title="spinr",
        version=__version__,
        description="Streaming codec for neural images: upload an image, train its INR in the background, "
        "stream it layer by layer through a simulated channel.",
        lifespan=lifespan,
    )
    app.state.services = svc = Services(settings, server_options(settings))
    svc.streams = StreamLimits(
        settings.max_streams,
        settings.max_streams_per_client,
        settings.max_stream_datagrams,
        settings.max_stream_seconds,
    )
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD)
    # Added last, so it runs first: a refused request reaches nothing else.
    policy = AccessPolicy(settings.allowed_hosts, settings.allowed_origins, settings.token)
    app.add_middleware(AccessControl, policy=policy)
    app.stream_entry = AccessControl(_stream_app, policy)
    install_error_handlers(app)
    # The stream route first: 400 clients at once each match it, before any of the HTTP routes.
    for module in (stream, service, jobs, images, packets, inits):
        app.include_router(module.router)
    mount_web_client(app, settings.web_dir)
    return app
