"""``/ws/stream/{id}``: one start message in, then the image's packets through a simulated channel."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from codec.bitstream import Bitstream
from server.services import ServicesDep
from server.states import JobState
from server.store import StoreError
from streaming.session import SessionError, StreamSession, channel_config, parse_have

log = logging.getLogger("spinr.server")
router = APIRouter()

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
WS_UNKNOWN_ID = 4404
WS_NOT_FINISHED = 4409
START_FIELDS = {"type", "channel", "have"}
MAX_REASON_BYTES = 123
"""A close reason is at most 123 bytes of UTF-8 (RFC 6455)."""


def ws_reason(text: str) -> str:
    data = text.encode()
    return text if len(data) <= MAX_REASON_BYTES else data[:120].decode(errors="ignore") + "..."


@router.websocket("/ws/stream/{job_id}")
async def stream(ws: WebSocket, job_id: str, svc: ServicesDep) -> None:
    await ws.accept()
    job = await run_in_threadpool(svc.store.get_job, job_id)
    if job is None:
        await ws.close(WS_UNKNOWN_ID, ws_reason(f"no image with id {job_id!r}"))
        return
    if job["state"] != JobState.DONE.value:
        await ws.close(
            WS_NOT_FINISHED, ws_reason(f"image {job_id} is not finished: its job is {job['state']}")
        )
        return
    timeout = svc.settings.stream_start_timeout
    try:
        message = await asyncio.wait_for(ws.receive(), timeout)
    except asyncio.TimeoutError:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(f"no start message within {timeout:g} s"))
        return
    if message["type"] == "websocket.disconnect":
        return
    try:
        bs = await run_in_threadpool(svc.cache.get, svc.store, job_id)
        session = start_session(message, bs)
    except SessionError as exc:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(str(exc)))
        return
    except StoreError as exc:
        await ws.close(WS_INTERNAL_ERROR, ws_reason(str(exc)))
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


def start_session(message: Mapping[str, Any], bs: Bitstream) -> StreamSession:
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
