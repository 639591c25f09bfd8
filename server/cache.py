"""Parsed bitstreams of finished images, shared by the image and stream routes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from codec.bitstream import Bitstream, load_bitstream
from server.store import Store, StoreError


class BitstreamCache:
    """Parsed bitstreams of finished images (immutable, so keyed by id and checksum), least recently
    used dropped first.

    Only the parse is cached, never the check: every ``get`` reads the file and checks it against
    its recorded SHA-256 (Store.read_file), as the download route does, so a file damaged on disk
    after it was cached is refused by every route alike (hashing a 1 MB stream takes ~1 ms)."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple[str, str], Bitstream] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, store: Store, job_id: str) -> Bitstream:
        """The image's parsed bitstream; StoreError when its file is missing or damaged."""
        info = store.file_info(job_id, "bitstream")
        if info is None:
            raise StoreError(f"no bitstream is recorded for image {job_id}")
        data = store.read_file(job_id, "bitstream")  # checked against info's SHA-256
        key = (job_id, info["sha256"])
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        bs, _ = load_bitstream(data, strict=True)
        with self._lock:
            self._items[key] = bs
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return bs
