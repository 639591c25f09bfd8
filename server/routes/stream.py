"""``/ws/stream/{id}``: one start message in, then the image's packets through a simulated channel.

Protocol version 1 (the default) sends every packet in order. Version 2 (``"version": 2`` or an
``"abr"`` object in the start message) runs the ABR controller (:mod:`streaming.abr_session`) on the
receiver's reports, which this route reads, bounds and hands over (docs/API.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from codec.bitstream import Bitstream
from server.services import ServicesDep
from server.states import JobState
from server.store import StoreError
from streaming.abr_session import AbrSession, parse_goal
from streaming.feedback import FeedbackError, parse_report
from streaming.session import SessionError, StreamSession, channel_config, parse_have

log = logging.getLogger("spinr.server")
router = APIRouter()

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
WS_UNKNOWN_ID = 4404
WS_NOT_FINISHED = 4409
START_FIELDS = {"type", "channel", "have", "version", "abr"}
MAX_REPORTS_PER_S = 50
"""Receiver messages per second a version-2 client may send (a burst of as many is allowed)."""
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
        # Off the event loop: a start message may carry a long bandwidth trace to validate.
        session = await run_in_threadpool(start_session, message, bs)
    except SessionError as exc:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(str(exc)))
        return
    except StoreError as exc:
        await ws.close(WS_INTERNAL_ERROR, ws_reason(str(exc)))
        return
    if isinstance(session, AbrSession):
        await _stream_v2(ws, job_id, session)
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


async def _stream_v2(ws: WebSocket, job_id: str, session: AbrSession) -> None:
    """Stream with the controller while a reader task feeds it the client's reports."""
    problem: list[str] = []
    max_seq = len(session.rungs)

    async def read_reports() -> None:
        tokens, last = float(MAX_REPORTS_PER_S), asyncio.get_running_loop().time()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                raise ConnectionError("client went away")
            now = asyncio.get_running_loop().time()
            tokens = min(float(MAX_REPORTS_PER_S), tokens + (now - last) * MAX_REPORTS_PER_S)
            last = now
            if tokens < 1:
                problem.append(f"more than {MAX_REPORTS_PER_S} messages per second")
                return
            tokens -= 1
            if message.get("text") is None:
                problem.append("client messages must be JSON text reports, not binary")
                return
            try:
                session.report(parse_report(message["text"], max_seq))
            except FeedbackError as exc:
                problem.append(str(exc))
                return

    reader = asyncio.create_task(read_reports())
    streamer = asyncio.create_task(session.run(ws.send_bytes))
    try:
        await asyncio.wait({reader, streamer}, return_when=asyncio.FIRST_COMPLETED)
        if problem:
            streamer.cancel()
            await ws.close(WS_POLICY_VIOLATION, ws_reason(problem[0]))
            log.info("stream refused a report", extra={"job": job_id, "reason": problem[0]})
            return
        if reader.done():  # the client went away
            streamer.cancel()
            return
        streamer.result()
        await ws.send_text(json.dumps(session.done_message()))
        await ws.close(1000)
    except Exception as exc:  # the client went away mid-stream: nothing to clean up
        log.info("stream ended early", extra={"job": job_id, "reason": repr(exc)})
        return
    finally:
        reader.cancel()
        streamer.cancel()
    log.info(
        "stream done",
        extra={"job": job_id, **{k: v for k, v in session.done_message().items() if k != "sends"}},
    )


def start_session(message: dict[str, Any], bs: Bitstream) -> StreamSession | AbrSession:
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
    version = start.get("version", 2 if "abr" in start else 1)
    if version not in (1, 2) or isinstance(version, bool):
        raise SessionError(f"unknown protocol version {version!r:.20}; allowed: 1, 2")
    if version == 1:
        if "abr" in start:
            raise SessionError("abr needs protocol version 2 (receiver reports); drop 'version': 1")
        return StreamSession(bs, channel, have)
    return AbrSession(bs, channel, parse_goal(start.get("abr")), have)
