"""Hostile edits of msgpack-shaped trees (maps, lists, scalars, bytes): the structure-aware core.

Format-independent: a v1 header is such a tree, and so will be any structured field of a v2 header.
"""

from __future__ import annotations

import copy
import math
import struct
from typing import Any

import msgpack

from fuzz.source import Source

Path = tuple[str | int, ...]

EDGE_NUMBERS: tuple[Any, ...] = (
    0, 1, -1, 2, 3, 255, 256, 65535, 65536, 2**24, 2**26 + 1, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1,
    0.0, -0.0, 0.5, 1e-45, 5e-324, 1e308, -1e308, math.nan, math.inf, -math.inf,
)  # fmt: skip
TYPE_SWAPS: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "",
    "x",
    b"",
    b"\x00",
    [],
    {},
    [1],
    {"k": 1},
    [[]],
)
F32_SPECIALS = (math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-45, 3.4e38)


def paths(tree: Any) -> list[Path]:
    """Every node of ``tree`` (containers and leaves), the root included, in a fixed order."""
    out: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(node.items())) if isinstance(k, str))
        elif isinstance(node, list):  # a long list (one planted by an earlier edit): its head is enough
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(node[:16]))))
    return out


def get(tree: Any, path: Path) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def put(tree: Any, path: Path, value: Any) -> Any:
    """``tree`` with the node at ``path`` replaced (the root itself when ``path`` is empty)."""
    if not path:
        return value
    get(tree, path[:-1])[path[-1]] = value
    return tree


def nest(value: Any, depth: int) -> Any:
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def tweak(src: Source, value: Any, vocabulary: list[Any]) -> Any:
    """A change of ``value`` that keeps (mostly) its type: off by one, scaled, truncated, extended..."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return src.choice([value + 1, value - 1, 2 * value, -value, value * 1000, 0, value + 65536])
    if isinstance(value, float):
        return src.choice([-value, value * 1e6, value / 1e6, 0.0, math.nan, math.inf, value + 1.0])
    if isinstance(value, str):
        return src.choice(
            [value + "x", "", value * 10, "é" + value, "x" * 65, "\x00", *map(str, vocabulary[:20])]
        )
    if isinstance(value, bytes):
        return tweak_bytes(src, value)
    if isinstance(value, list):
        if not value:
            return copy.deepcopy(src.choice([[0], [[]], [None]]))
        i = src.integer(0, len(value) - 1)
        return src.choice(
            [
                value[:i] + value[i + 1 :],
                value[: i + 1] + value[i:],
                value[::-1],
                [],
                value * 2,
                value + [value[i]],
            ]
        )
    if isinstance(value, dict):
        if not value:
            return {"extra": 1}
        keys = list(value)
        k = src.choice(keys)
        out = dict(value)
        op = src.integer(0, 3)
        if op == 0:
            del out[k]
        elif op == 1:
            out["extra" + str(src.integer(0, 9))] = copy.deepcopy(src.choice(TYPE_SWAPS))
        elif op == 2:
            out[k.encode() if isinstance(k, str) else k] = out.pop(k)  # a bytes key
        else:
            out[src.choice(keys)] = out[k]  # one key's value under another
        return out
    return copy.deepcopy(src.choice(TYPE_SWAPS))


def tweak_bytes(src: Source, data: bytes) -> bytes:
    op = src.integer(0, 6)
    if op == 0 or not data:
        return data + bytes(src.integer(1, 8))
    if op == 1:
        return data[: src.integer(0, len(data) - 1)]
    if op == 2:
        i = src.integer(0, len(data) - 1)
        return data[:i] + bytes([data[i] ^ (1 << src.integer(0, 7))]) + data[i + 1 :]
    if op == 3:  # float32 specials where a scale or offset lives
        n = max(1, len(data) // 4)
        values = [src.choice(F32_SPECIALS) for _ in range(min(n, 4))] + [1.0] * (n - min(n, 4))
        return struct.pack(f"<{n}f", *values)
    if op == 4:
        return b"\xff" * len(data)
    if op == 5:
        return src.blob(len(data))
    return data * 2


def hostile(src: Source, current: Any, vocabulary: list[Any]) -> Any:
    """A value to put where ``current`` was."""
    kind = src.integer(0, 9)
    if kind <= 1:
        return copy.deepcopy(src.choice(TYPE_SWAPS))
    if kind <= 3:
        return src.choice(EDGE_NUMBERS)
    if kind <= 6:
        return tweak(src, current, vocabulary)
    if kind == 7:
        return nest(current, src.choice([14, 15, 16, 17, 40, 200, 480]))  # msgpack packs <= 511 deep
    if kind == 8:
        size = src.choice([64, 65, 1000, 65536, 65537, 2**20, 2**20 + 1])
        shape = src.integer(0, 3)
        if shape == 0:
            return [0] * size
        if shape == 1:
            return "x" * size
        return bytes(size) if shape == 2 else {f"k{i}": i for i in range(min(size, 5000))}
    return src.choice(vocabulary) if vocabulary else None


def mutate(src: Source, tree: Any, vocabulary: list[Any], edits: int) -> tuple[Any, list[str]]:
    """Apply ``edits`` hostile edits at random nodes; returns the tree and one note per edit."""
    notes = []
    for _ in range(edits):
        nodes = paths(tree)
        path = src.choice(nodes)
        old = get(tree, path)
        new = hostile(src, old, vocabulary)
        tree = put(tree, path, new)
        try:
            msgpack.packb(tree, use_bin_type=True)
        except (ValueError, OverflowError, TypeError):  # msgpack cannot carry it (e.g. too deep): undo
            tree = put(tree, path, old)
            continue
        notes.append(f"{'.'.join(map(str, path)) or '<root>'} = {_short(new)}")
    return tree, notes


def vocabulary_of(tree: Any) -> list[Any]:
    """Strings and numbers that occur in ``tree``: names and sizes another field might be confused with."""
    out: list[Any] = []
    for path in paths(tree):
        node = get(tree, path)
        if isinstance(node, (str, int, float)) and not isinstance(node, bool) and node not in out:
            out.append(node)
        if path and isinstance(path[-1], str) and path[-1] not in out:
            out.append(path[-1])
    return out


def _short(value: Any) -> str:
    from codec.errors import brief

    return brief(value, 60)
