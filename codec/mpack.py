"""msgpack with bounds: the v1 payloads and the v2 header's encoder-meta extension.

Decoding runs with per-object limits plus a budget on the total number of container items, so a small
payload cannot expand into gigabytes of Python objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgpack

from codec.errors import BitstreamError, brief

MAX_BIN_LEN = 64 * 2**20
MAX_STR_LEN = 2**20
MAX_ARRAY_LEN = 2**16
MAX_MAP_LEN = 2**12
MAX_ITEMS = 2**18
"""Total array elements plus map entries in one payload (a real one has a few thousand at most)."""
MAX_DEPTH = 16
"""Deepest nesting of arrays and maps in a payload (a v1 header needs 6: map, units, unit, tensors,
entry, shape), so code that walks one recursively (``repr``, ``json.dumps``, comparisons) cannot hit
Python's recursion limit."""


def pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


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


def unpack_map(raw: bytes, what: str = "payload") -> dict[str, Any]:
    """msgpack bytes -> a map with string keys; anything else raises BitstreamError naming ``what``."""
    budget = _Budget(MAX_ITEMS)
    try:
        obj = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            list_hook=budget.list_hook,
            object_hook=budget.object_hook,
            max_bin_len=MAX_BIN_LEN,
            max_str_len=MAX_STR_LEN,
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_MAP_LEN,
            max_ext_len=0,
        )
    except BitstreamError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, UnicodeDecodeError, limit errors are all ValueErrors.
        raise BitstreamError(f"{what} is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise BitstreamError(f"{what} must be a msgpack map, got {type(obj).__name__}")
    check_depth(obj, MAX_DEPTH, what)
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


def check_plain(value: Any, what: str) -> None:
    """``value`` must be JSON-shaped (maps with string keys, lists, strings, finite numbers, booleans,
    null), so that whatever parses can be shown as JSON; walked iteratively (depth is bounded by
    msgpack's own nesting limit all the same)."""
    stack: list[tuple[str, Any]] = [(what, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise BitstreamError(f"{path} has a key {brief(k)} that is not a string")
                stack.append((f"{path}.{k[:64]}", item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise BitstreamError(f"{path} is {v}: numbers in a header must be finite")
        elif v is not None and not isinstance(v, (str, int, bool)):
            raise BitstreamError(
                f"{path} is {type(v).__name__}; meta holds maps, lists, strings, numbers, booleans, null"
            )
