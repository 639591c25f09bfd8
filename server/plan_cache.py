"""Channel simulations of version-1 streams, shared by every client asking for the same image over
the same channel. A channel is deterministic per seed (netsim), so 400 clients of one image through
one seeded loss model need one simulation, not 400; a large simulation that is still running in the
planner process is awaited by every later client that asks for it (one flight)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable

from streaming.session import Simulated, StreamSession

MAX_ENTRIES = 64
MAX_BYTES = 32 * 2**20
"""Delivered bytes the cache holds at most (a simulation is about its stream's size, more with
duplicates); a simulation larger than this is not kept."""


class ChannelCache:
    """Least recently used simulations by (image id, file checksum, channel, units the client has)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[Hashable, tuple[Simulated, int]] = OrderedDict()
        self._lock = threading.Lock()  # stream starts run in the thread pool
        self.nbytes = 0
        self.flights: dict[Hashable, asyncio.Future[Simulated]] = {}
        """Large simulations running in the planner process (touched on the event loop only)."""

    @staticmethod
    def key(image: tuple[str, str], session: StreamSession) -> Hashable | None:
        """What a session's simulation depends on; None when it has no channel (nothing to simulate)."""
        if session.channel is None:
            return None
        channel = json.dumps(session.channel.to_dict(), sort_keys=True)
        return (image, channel, tuple(sorted(session.have)))

    def get(self, key: Hashable | None) -> Simulated | None:
        if key is None:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable | None, simulated: Simulated) -> None:
        size = sum(len(data) for _, data, _, _ in simulated)
        if key is None or size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.nbytes -= old[1] if old else 0
            self._items[key] = (simulated, size)
            self.nbytes += size
            while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped

    def __len__(self) -> int:
        return len(self._items)
