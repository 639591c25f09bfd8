"""Parsed bitstreams of finished images, shared by the image and stream routes."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import cached_property

from codec.bitstream import Bitstream, load_bitstream
from codec.budget import DEFAULT_BUDGET
from codec.units import MAX_TOTAL_ELEMENTS
from server.store import Store, StoreError
from streaming.abr_session import AbrStream
from streaming.session import PacketBytes, packet_bytes

STORED = DEFAULT_BUDGET.with_limits({"max_params": MAX_TOTAL_ELEMENTS})


@dataclass(frozen=True)
class StoredStream:
    """A finished image's bitstream with its packets serialised once, for every stream of it."""

    key: tuple[str, str]
    """(image id, SHA-256 of its file): a new file is a new key."""
    bitstream: Bitstream
    packets: tuple[PacketBytes, ...]
    """(bytes, unit or None for the header) of each packet, in the bitstream's order."""

    @cached_property
    def abr(self) -> AbrStream:
        """The ladder and packets of its version-2 streams, made on the first one's start (two threads
        may both make it: the same value). SessionError when it cannot be sent that way."""
        return AbrStream.of(self.bitstream, [data for data, _ in self.packets])


class BitstreamCache:
    """Parsed bitstreams of finished images (immutable, so keyed by id and checksum), least recently
    used dropped first.

    Only the parse is cached, never the check: every ``get`` reads the file and checks it against
    its recorded SHA-256 (Store.read_file), as the download route does, so a file damaged on disk
    after it was cached is refused by every route alike (hashing a 1 MB stream takes ~1 ms)."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple[str, str], StoredStream] = OrderedDict()
        self._ids: Counter[str] = Counter()
        """Cached entries per image id."""
        self._lock = threading.Lock()
        self._parsing: dict[tuple[str, str], threading.Lock] = {}
        """One lock per file being parsed: the clients of a new image wait for one parse."""
        self.size = size

    def holds(self, job_id: str) -> bool:
        """Whether the image's bitstream is cached, so its job is done (a final state): a stream may
        skip the database's answer to that. Without the lock: one dict lookup is atomic, and the event
        loop asks for every stream, where a start thread preempted while holding the lock made it wait
        for that thread and then for the GIL."""
        return job_id in self._ids

    def get(self, store: Store, job_id: str) -> Bitstream:
        """The image's parsed bitstream; StoreError when its file is missing or damaged."""
        return self.get_stream(store, job_id).bitstream

    def get_stream(self, store: Store, job_id: str) -> StoredStream:
        """The image's parsed bitstream and its packets' bytes (serialising them is most of a small
        stream's planning, the same for every client); StoreError when its file is missing or damaged."""
        info = store.file_info(job_id, "bitstream")
        if info is None:
            raise StoreError(f"no bitstream is recorded for image {job_id}")
        data = store.read_file(job_id, "bitstream", info)  # checked against info's SHA-256
        key = (job_id, info["sha256"])
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            parsing = self._parsing.setdefault(key, threading.Lock())
        # 400 clients of a new image arrive before the first parse ends: without this every thread
        # of the pool parsed the same file.
        with parsing:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                return self._parse(key, data)
            finally:
                with self._lock:
                    if self._parsing.get(key) is parsing:
                        del self._parsing[key]

    def _parse(self, key: tuple[str, str], data: bytes) -> StoredStream:
        job_id = key[0]
        # The server's own files: any size its option caps allow (a preview holds them to the decode
        # budget; the format's limits still apply).
        bs, _ = load_bitstream(data, True, STORED)
        stored = StoredStream(key, bs, tuple(packet_bytes(p) for p in bs.packets()))
        with self._lock:
            if key not in self._items:
                self._ids[job_id] += 1
            self._items[key] = stored
            while len(self._items) > self.size:
                (old, _), _ = self._items.popitem(last=False)
                self._ids[old] -= 1
                if self._ids[old] <= 0:
                    del self._ids[old]
        return stored
