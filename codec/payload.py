"""Packet payloads: a msgpack map compressed into one zstd frame that declares its content size.

Decoding never trusts a size it has not bounded: the declared content size is checked against
``MAX_DECOMPRESSED`` before anything is allocated, the decompressor refuses larger windows, and msgpack
runs with per-object limits plus a budget on the total number of container items, so a small packet
cannot expand into gigabytes of Python objects. Containers nest at most ``MAX_DEPTH`` deep, so code
that walks a payload recursively (``repr``, ``json.dumps``, comparisons) cannot hit Python's recursion
limit; :func:`check_depth` is the same check for other untrusted trees (JSON messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack
import zstandard

from codec.errors import BitstreamError

MAX_DECOMPRESSED = 64 * 2**20
MAX_STR_LEN = 2**20
MAX_ARRAY_LEN = 2**16
MAX_MAP_LEN = 2**12
MAX_ITEMS = 2**18
"""Total array elements plus map entries in one payload (a real one has a few thousand at most)."""
MAX_DEPTH = 16
"""Deepest nesting of arrays and maps in a payload (a header needs 6: map, units, unit, tensors,
entry, shape)."""


def encode_payload(obj: dict[str, Any], level: int = 19) -> bytes:
    raw = msgpack.packb(obj, use_bin_type=True)
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw)


def _decompress(data: bytes) -> bytes:
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise BitstreamError(f"payload is not a zstd frame: {exc}") from None
    if size < 0:
        raise BitstreamError("payload zstd frame does not declare its content size")
    if size > MAX_DECOMPRESSED:
        raise BitstreamError(
            f"payload declares {size} decompressed bytes, more than MAX_DECOMPRESSED {MAX_DECOMPRESSED}"
        )
    # The streaming object allocates by what it actually produces, and libzstd stops at the declared size.
    dobj = zstandard.ZstdDecompressor(max_window_size=MAX_DECOMPRESSED).decompressobj()
    try:
        raw = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise BitstreamError(f"payload zstd frame is corrupt: {exc}") from None
    if not dobj.eof:
        raise BitstreamError("payload zstd frame is truncated")
    if dobj.unused_data:
        raise BitstreamError(f"payload has {len(dobj.unused_data)} bytes after its zstd frame")
    if len(raw) != size:
        raise BitstreamError(f"payload decompressed to {len(raw)} bytes but declares {size}")
    return raw


class _Budget:
    """msgpack hooks that count container items and stop once the budget is spent."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def _spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise BitstreamError(f"payload has more than {MAX_ITEMS} array elements and map entries")

    def list_hook(self, items: list[Any]) -> list[Any]:
        self._spend(len(items))
        return items

    def object_hook(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        self._spend(len(obj))
        return obj


def check_depth(obj: Any, limit: int, what: str) -> None:
    """Raise BitstreamError if lists and dicts in ``obj`` nest more than ``limit`` deep (``obj`` itself
    is level 1). Iterative, so a tree nested thousands deep is refused rather than overflowing the stack."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if level > limit:
            raise BitstreamError(f"{what} nests lists and maps more than {limit} deep")
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))


def decode_payload(data: bytes) -> dict[str, Any]:
    """zstd frame -> msgpack map with string keys; anything else raises BitstreamError."""
    raw = _decompress(bytes(data))
    budget = _Budget(MAX_ITEMS)
    try:
        obj = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            list_hook=budget.list_hook,
            object_hook=budget.object_hook,
            max_bin_len=MAX_DECOMPRESSED,
            max_str_len=MAX_STR_LEN,
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_MAP_LEN,
            max_ext_len=0,
        )
    except BitstreamError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, UnicodeDecodeError, limit errors are all ValueErrors.
        raise BitstreamError(f"payload is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise BitstreamError(f"payload must be a msgpack map, got {type(obj).__name__}")
    check_depth(obj, MAX_DEPTH, "payload")
    return obj
