"""``/ws/stream/{id}``: one start message in, then the image's packets through a simulated channel.

Protocol version 1 (the default) sends every packet in order. Version 2 (``"version": 2`` or an
``"abr"`` object in the start message) runs the ABR controller (:mod:`streaming.abr_session`) on the
receiver's reports, which this route reads, bounds and hands over (docs/API.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Hashable, Mapping
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.types import Message

from server.access import token_subprotocol
from server.cache import StoredStream
from server.services import Services, get_services
from server.states import JobState
from server.store import StoreError
from server.streams import PlanFailed, StreamsBusy
from server.ws_protocol import SEND_MANY, SEND_MANY_BYTES
from streaming.abr_session import MAX_SEND_FACTOR, AbrSession, parse_goal
from streaming.feedback import FeedbackError, parse_report
from streaming.session import (
    SessionError,
    StreamSession,
    channel_config,
    load_message,
    parse_have,
)

log = logging.getLogger("spinr.server")
router = APIRouter()

WS_POLICY_VIOLATION = 1008
WS_INTERNAL_ERROR = 1011
WS_TRY_AGAIN_LATER = 1013
WS_UNKNOWN_ID = 4404
WS_NOT_FINISHED = 4409
START_FIELDS = {"type", "channel", "have", "version", "abr"}
MAX_REPORTS_PER_S = 50
"""Receiver messages per second a version-2 client may send (a burst of as many is allowed)."""
SEND_GRACE = 30.0
"""Seconds a client may fall behind the channel's schedule before its stream is stopped (a client
that reads nothing would otherwise hold its stream slot for ever)."""
MAX_REASON_BYTES = 123
"""A close reason is at most 123 bytes of UTF-8 (RFC 6455)."""


def ws_reason(text: str) -> str:
    data = text.encode()
    return text if len(data) <= MAX_REASON_BYTES else data[:120].decode(errors="ignore") + "..."


async def stream(ws: WebSocket) -> None:
    """``/ws/stream/{job_id}``, a plain Starlette route: FastAPI's dependency solving cost each
    connection more than its plan (it has nothing to validate here)."""
    job_id: str = ws.path_params["job_id"]
    svc = get_services(ws)
    await ws.accept(subprotocol=token_subprotocol(ws.scope))  # server.access checked the token
    client = ws.client.host if ws.client else "unknown"
    try:
        with svc.streams.slot(client):
            await _serve(ws, job_id, svc)
    except StreamsBusy as exc:
        await ws.close(WS_TRY_AGAIN_LATER, ws_reason(str(exc)))


router.add_websocket_route("/ws/stream/{job_id}", stream)


async def _serve(ws: WebSocket, job_id: str, svc: Services) -> None:
    if not svc.cache.holds(job_id):  # a cached bitstream's job is done, a final state
        state = await svc.streams.job_state(job_id, svc.store.get_job)
        if state is None:
            await ws.close(WS_UNKNOWN_ID, ws_reason(f"no image with id {job_id!r}"))
            return
        if state != JobState.DONE.value:
            await ws.close(WS_NOT_FINISHED, ws_reason(f"image {job_id} is not finished: its job is {state}"))
            return
    timeout = svc.settings.stream_start_timeout
    try:
        message = await _receive_within(ws, timeout)
    except asyncio.TimeoutError:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(f"no start message within {timeout:g} s"))
        return
    if message["type"] == "websocket.disconnect":
        return
    try:
        started, planned, key = await svc.streams.start(_start, svc, job_id, message)
        if not isinstance(started, AbrSession):
            session = started if planned else await svc.streams.plan(started, key)
    except SessionError as exc:
        await ws.close(WS_POLICY_VIOLATION, ws_reason(str(exc)))
        return
    except (StoreError, PlanFailed) as exc:
        await ws.close(WS_INTERNAL_ERROR, ws_reason(str(exc)))
        return
    if isinstance(started, AbrSession):
        await _stream_v2(ws, job_id, started, svc.streams.max_seconds)
        return
    late = await (_send_now(ws, session) if session.duration == 0 else _send_on_schedule(ws, session))
    if late is None:
        with contextlib.suppress(Exception):  # the client may leave right after the last message
            await ws.close(1000)
        if log.isEnabledFor(logging.INFO):  # not even the summary's dict otherwise
            log.info("stream done", extra={"job": job_id, **session.summary.to_message()})
    elif late:
        log.info("stream ended early", extra={"job": job_id, "reason": late})
    else:
        log.info("stream stopped: the client did not read it in time", extra={"job": job_id})
        with contextlib.suppress(Exception):
            await ws.close(
                WS_POLICY_VIOLATION,
                ws_reason(f"the stream was not read within {SEND_GRACE:g} s of its schedule"),
            )


if sys.version_info >= (3, 11):

    async def _receive_within(ws: WebSocket, timeout: float) -> Message:
        """``ws.receive()`` or TimeoutError after ``timeout`` s; a timer, where ``wait_for`` (3.11) made
        a task of every stream's wait for its start message."""
        async with asyncio.timeout(timeout):
            return await ws.receive()

else:

    async def _receive_within(ws: WebSocket, timeout: float) -> Message:
        return await asyncio.wait_for(ws.receive(), timeout)


async def _send_now(ws: WebSocket, session: StreamSession) -> str | None:
    """Send a stream whose messages are all due at once (no channel delay): the sends wait for the
    socket only, so a timeout bounds them and a client going away fails a send; no reader task
    (the two tasks and the wait of each stream were a tenth of the route's event-loop time). What
    :func:`_send_on_schedule` returns. A small stream under server.ws_protocol is one write, which
    waits for nothing (so needs no timeout task)."""
    try:
        if SEND_MANY in ws.scope.get("extensions", {}) and session.summary.bytes <= SEND_MANY_BYTES:
            await _send_many(ws, session)
        else:
            await asyncio.wait_for(_send(ws, session), SEND_GRACE)
    except asyncio.TimeoutError:
        return ""
    except Exception as exc:  # the client went away (or the server is stopping)
        return repr(exc)
    return None


async def _send_on_schedule(ws: WebSocket, session: StreamSession) -> str | None:
    """Send each message when the channel delivers it. None: all sent; "": the client did not read
    them within SEND_GRACE s of the schedule; otherwise why the stream ended early."""
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
        return None
    if gone in done or sender in done:
        return "client went away" if gone in done else repr(sender.exception())
    return ""


async def _send(ws: WebSocket, session: StreamSession) -> None:
    async for msg in session.messages(pace=True):
        await ws.send_bytes(msg.data)
    await ws.send_text(json.dumps(session.summary.to_message()))


async def _send_many(ws: WebSocket, session: StreamSession) -> None:
    """:func:`_send` of a stream due at once, its messages in one write (server.ws_protocol)."""
    messages: list[bytes | str] = [m.data for m in session.plan()]
    messages.append(json.dumps(session.summary.to_message()))
    await ws.send({"type": "websocket.send", SEND_MANY: messages})


async def _until_disconnect(ws: WebSocket) -> None:
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass  # anything else a client sends is ignored (uvicorn bounds each message's size)


def _start(
    shared: dict[Hashable, Any], svc: Services, job_id: str, message: Mapping[str, Any]
) -> tuple[StreamSession | AbrSession, bool, Hashable | None]:
    """All a stream needs before its first packet, in one trip to the thread pool with the other
    streams starting meanwhile (:meth:`StreamLimits.start`; each trip costs the event loop a wake-up
    and a hand-over of the GIL): the checked file, the start message (it may carry a long bandwidth
    trace), the bounds and a small plan. The streams of one image in one batch share one read and
    check of its file, made after all of them asked (``shared``).
    (session, whether it is planned, its channel's cache key); StoreError or SessionError."""
    stored = shared.get(job_id)
    if stored is None:
        try:
            stored = shared[job_id] = svc.cache.get_stream(svc.store, job_id)
        except StoreError as exc:
            shared[job_id] = exc
            raise
    elif isinstance(stored, StoreError):
        raise StoreError(str(stored))
    started = start_session(message, stored)
    if isinstance(started, AbrSession):
        _check_abr_work(started, stored, svc.streams.max_datagrams)
        return started, True, None
    key = svc.streams.channels.key(stored.key, started)
    return started, svc.streams.plan_small(started, key), key


def _check_abr_work(session: AbrSession, stored: StoredStream, max_datagrams: int) -> None:
    """A version-2 stream sends each packet at most a few times over: bound its channel work as a
    version-1 plan's, allowing for every resend (SessionError names the bound)."""
    plan = StreamSession(stored.bitstream, session.channel, session.have, stored.packets)
    plan.check_work(max_datagrams // MAX_SEND_FACTOR)


async def _stream_v2(ws: WebSocket, job_id: str, session: AbrSession, max_seconds: float) -> None:
    """Stream with the controller while a reader task feeds it the client's reports."""
    problem: list[str] = []
    max_seq = len(session.rungs)

    async def read_reports() -> None:
        loop = asyncio.get_running_loop()
        tokens, last = float(MAX_REPORTS_PER_S), loop.time()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                raise ConnectionError("client went away")
            now = loop.time()
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
            except (FeedbackError, SessionError) as exc:
                problem.append(str(exc))
                return

    reader = asyncio.create_task(read_reports())
    streamer = asyncio.create_task(session.run(ws.send_bytes, max_seconds=max_seconds))
    try:
        # A client that reads nothing blocks the sends: bounded like a version-1 stream.
        done, _ = await asyncio.wait(
            {reader, streamer}, timeout=max_seconds + SEND_GRACE, return_when=asyncio.FIRST_COMPLETED
        )
        if problem:
            streamer.cancel()
            await ws.close(WS_POLICY_VIOLATION, ws_reason(problem[0]))
            log.info("stream refused a report", extra={"job": job_id, "reason": problem[0]})
            return
        if not done:
            log.info("stream stopped: the client did not read it in time", extra={"job": job_id})
            with contextlib.suppress(Exception):
                await ws.close(
                    WS_POLICY_VIOLATION, ws_reason(f"the stream was not read within {SEND_GRACE:g} s")
                )
            return
        if reader in done:  # the client went away
            streamer.cancel()
            return
        streamer.result()
        await ws.send_text(json.dumps(session.done_message()))
        with contextlib.suppress(Exception):  # the client may leave right after the last message
            await ws.close(1000)
    except Exception as exc:  # the client went away mid-stream: nothing to clean up
        log.info("stream ended early", extra={"job": job_id, "reason": repr(exc)})
        return
    finally:
        for task in (reader, streamer):
            task.cancel()
        await asyncio.gather(reader, streamer, return_exceptions=True)
    summary = session.done_message()
    log.info("stream done", extra={"job": job_id, **{k: v for k, v in summary.items() if k != "sends"}})


def start_session(message: Mapping[str, Any], stored: StoredStream) -> StreamSession | AbrSession:
    """The API's start message -> a session of the image ``stored`` (its packets serialised once for
    every stream); SessionError names what is malformed."""
    bs = stored.bitstream
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
    version = start.get("version", 2 if "abr" in start else 1)
    if version not in (1, 2) or isinstance(version, bool):
        raise SessionError(f"unknown protocol version {version!r:.20}; allowed: 1, 2")
    if version == 1:
        if "abr" in start:
            raise SessionError("abr needs protocol version 2 (receiver reports); drop 'version': 1")
        return StreamSession(bs, channel, have, stored.packets)
    return AbrSession(bs, channel, parse_goal(start.get("abr")), have, stored.abr)
