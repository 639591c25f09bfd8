"""The browser client at ``/``: ``--web-dir``, else the one shipped as package data of ``client``."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("spinr.server")
WEB_PACKAGE = "client"
"""The package whose data holds the browser client (``client/web/**``, pyproject's package-data)."""


def shipped_web_dir() -> Path | None:
    """The installed browser client's folder, found through the package (not a path relative to
    this file); None when the client package is not installed or not a plain folder (a zip)."""
    try:
        web = importlib.resources.files(WEB_PACKAGE).joinpath("web")
    except ModuleNotFoundError:
        return None
    return web if isinstance(web, Path) and web.is_dir() else None


def mount_web_client(app: FastAPI, web_dir: Path | None) -> None:
    """Serve ``web_dir`` (or the shipped client) at ``/``; without one, ``/`` says where the API is.
    Mounted last: it answers every path no route took."""
    folder = web_dir or shipped_web_dir()
    if folder is not None and folder.is_dir():
        app.mount("/", StaticFiles(directory=folder, html=True), name="web")
        return
    log.info("no browser client to serve", extra={"web_dir": str(web_dir) if web_dir else None})

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, str]:
        return {"service": "spinr", "docs": "/docs", "health": "/health"}
