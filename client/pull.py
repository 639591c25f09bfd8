"""``spinr stream ID --pull``: the client-driven mode. The client fetches the image's packet index and
header, then pulls the packets its own ABR controller chooses (streaming/pull.py), one HTTP request at
a time, over ``GET /api/images/{id}/packets/{seq}`` (docs/API.md "Pull mode")."""

from __future__ import annotations

import argparse
from typing import Any

from client.remote import ServerError, check, client, detail, unreachable
from codec.errors import ConfigError

MAX_FAILURES = 8
"""Failed requests (timeouts, server errors) after which a pull gives up."""


def pull_goal(args: argparse.Namespace, header_bytes: int) -> Any:
    from streaming.abr import Goal

    if args.deadline is not None and not 0 < args.deadline <= 600:
        raise ConfigError(f"--deadline {args.deadline:g} is out of range; allowed seconds in (0, 600]")
    if args.budget is not None and not 1 <= args.budget <= 2**31:
        raise ConfigError(f"--budget {args.budget} is out of range; allowed 1..{2**31} bytes")
    budget = None if args.budget is None else max(0, args.budget - header_bytes)  # the header is pulled first
    return Goal(args.deadline, budget)


def pull(args: argparse.Namespace, image_id: str, receiver: Any, progress: Any) -> dict[str, Any]:
    """Pull the stream into ``receiver``; returns the summary (the pulls, bytes, what the ladder promises)."""
    import httpx

    from codec.image import save_png
    from streaming.pull import PullPlanner, rungs_of_index

    if not image_id or "/" in image_id or image_id.startswith(("ws:", "wss:", "http:", "https:")):
        raise ServerError(f"{image_id!r}: --pull takes an image id (it talks HTTP to --server)")
    base = f"/api/images/{image_id}/packets"
    written: list[str] = []
    try:
        with client(args.server, timeout=10.0, token=args.token) as http:
            index = check(http.get(base), f"packet index of image {image_id}")
            try:
                planner = PullPlanner(rungs_of_index(index), pull_goal(args, int(index["header_bytes"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ServerError(f"packet index of image {image_id} is malformed: {exc}") from None
            head = http.get(f"{base}/0")
            if head.status_code >= 400:
                raise ServerError(
                    f"header packet of image {image_id}: server answered {head.status_code}: {detail(head)}"
                )
            progress.update(receiver, receiver.feed(head.content))
            failures = 0
            while (packet := planner.next()) is not None:
                try:
                    r = http.get(f"{base}/{packet + 1}")
                    if r.status_code >= 400:
                        raise ServerError(
                            f"packet seq {packet + 1}: server answered {r.status_code}: {detail(r)}"
                        )
                except (httpx.TransportError, ServerError) as exc:
                    planner.failed(packet)
                    failures += 1
                    progress.note(f"spinr stream --pull: {exc}")
                    if failures >= MAX_FAILURES:
                        raise ServerError(f"{failures} pulls failed; giving up (last: {exc})") from None
                    continue
                planner.arrived(packet, len(r.content))
                entry = receiver.feed(r.content)
                progress.update(receiver, entry)
                if entry.new_picture and receiver.picture() is not None:
                    name = f"layer-{len(written) + 1:02d}.png"
                    save_png(args.out / name, receiver.picture().rgb)
                    written.append(name)
    except httpx.TransportError as exc:
        raise unreachable(args.server, exc) from None
    if receiver.header is None or receiver.picture() is None:
        raise ServerError("the pull ended before anything decodable arrived (header or first stage missing)")
    save_png(args.out / "final.png", receiver.picture().rgb)
    link = planner.book.estimator
    promised = planner.psnr()
    summary = {
        "type": "pull",
        "pulls": planner.pulls,
        "requests": len(planner.pulls),
        "bytes": receiver.bytes,
        "abr": {
            "deadline_s": planner.goal.deadline_s,
            "byte_budget": args.budget,
            "stopped": planner.last.reason if planner.last is not None else "",
            "ladder_psnr": promised if promised is None or promised != float("inf") else "inf",
            "throughput_kbps": None if link.throughput is None else round(link.throughput * 8 / 1000, 2),
        },
    }
    return {"summaries": [summary], "written": written, "reconnects": 0, "server_dropped": []}
