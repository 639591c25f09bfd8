"""``/ws/stream/{id}``: one start message in, then the image's packets through a simulated channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from codec.bitstream import Bitstream
from server.access import token_subprotocol
from server.services import ServicesDep
from server.states import JobState
from server.store import StoreError
from server.streams import PlanFailed, StreamsBusy
from streaming.session import SessionError, StreamSession, channel_config, load_message, parse_have

log = logging.getLogger("spinr.server")
router = APIRouter()

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
WS_TRY_AGAIN_LATER = 1013
WS_UNKNOWN_ID = 4404
WS_NOT_FINISHED = 4409
START_FIELDS = {"type", "channel", "have"}
SEND_GRACE = 30.0
"""Seconds a client may fall behind the channel's schedule before its stream is stopped (a client
that reads nothing would otherwise hold its stream slot for ever)."""
MAX_REASON_BYTES = 123
"""A close reason is at most 123 bytes of UTF-8 (RFC 6455)."""


def ws_reason(text: str) -> str:
    data = text.encode()
    return text if len(data) <= MAX_REASON_BYTES else data[:120].decode(errors="ignore") + "..."


@router.websocket("/ws/stream/{job_id}")
async def stream(ws: WebSocket, job_id: str, svc: ServicesDep) -> None:
    await ws.accept(subprotocol=token_subprotocol(ws.scope))  # server.access checked the token
    client = ws.client.host if ws.client else "unknown"
    try:
        with svc.streams.slot(client):
            await _serve(ws, job_id, svc)
    except StreamsBusy as exc:
        await ws.close(WS_TRY_AGAIN_LATER, ws_reason(str(exc)))


async def _serve(ws: WebSocket, job_id: str, svc: ServicesDep) -> None:
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
        session = await svc.streams.plan(start_session(message, bs))
    except SessionError as exc:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(str(exc)))
        return
    except (StoreError, PlanFailed) as exc:
        await ws.close(WS_INTERNAL_ERROR, ws_reason(str(exc)))
        return
    # The client sends nothing after its start message; reading on is how its going away (or the
    # server's shutdown) is noticed while the sender waits for a message's arrival time.
    sender = asyncio.create_task(_send(ws, session))
    gone = asyncio.create_task(_until_disconnect(ws))
    done, _ = await asyncio.wait(
        {sender, gone}, timeout=session.duration + SEND_GRACE, return_when=asyncio.FIRST_COMPLETED
    )
    for task in (sender, gone):
        task.cancel()
    await asyncio.gather(sender, gone, return_exceptions=True)
    if sender in done and sender.exception() is None:
        with contextlib.suppress(Exception):  # the client may leave right after the last message
            await ws.close(1000)
        log.info("stream done", extra={"job": job_id, **session.summary.to_message()})
    elif gone in done or sender in done:
        reason = "client went away" if gone in done else repr(sender.exception())
        log.info("stream ended early", extra={"job": job_id, "reason": reason})
    else:
        log.info("stream stopped: the client did not read it in time", extra={"job": job_id})
        with contextlib.suppress(Exception):
            await ws.close(
                WS_POLICY_VIOLATION,
                ws_reason(f"the stream was not read within {SEND_GRACE:g} s of its schedule"),
            )


async def _send(ws: WebSocket, session: StreamSession) -> None:
    async for msg in session.messages(pace=True):
        await ws.send_bytes(msg.data)
    await ws.send_text(json.dumps(session.summary.to_message()))


async def _until_disconnect(ws: WebSocket) -> None:
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass  # anything else a client sends is ignored (uvicorn bounds each message's size)


def start_session(message: Mapping[str, Any], bs: Bitstream) -> StreamSession:
    """The API's start message -> a session; SessionError names what is malformed."""
    text = message.get("text")
    if text is None:
        raise SessionError("the first message must be a JSON text message of type 'start', not binary")
    start = load_message(text, "first message")  # nesting bounded: deep JSON is a SessionError (1008)
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
