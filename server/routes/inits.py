"""``/api/inits``: the shared initialisations θ0 this server encodes from, as ``.spnri`` files a
browser fetches by the hash a stream's header names (codec/meta; docs/API.md)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from codec.errors import InitError
from codec.meta import store

router = APIRouter(tags=["inits"])
HASH = re.compile(r"[0-9a-f]{16}")


@router.get("/api/inits")
def inits() -> dict[str, Any]:
    """Every θ0 an ``init=meta`` encode may use: hash, model, arch and parameters."""
    try:
        found = store.shipped()
    except InitError as exc:  # a damaged file in a θ0 folder: say which, do not serve half a list
        raise HTTPException(500, str(exc)) from None
    return {
        "inits": [
            {"hash": i.hash_hex, "model": i.model, "arch": i.arch, "params": store.param_count(i)}
            for i in found
        ]
    }


@router.get("/api/inits/{digest}.spnri", response_class=Response)
def init_file(digest: str) -> Response:
    if not HASH.fullmatch(digest):
        raise HTTPException(422, f"θ0 hash {digest[:40]!r} is not 16 lowercase hex digits")
    try:
        init = store.find(bytes.fromhex(digest))
    except InitError:
        raise HTTPException(404, f"this server has no θ0 {digest}") from None
    return Response(
        init.to_bytes(),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{digest}.spnri"',
            "Cache-Control": "max-age=86400",
        },
    )
