"""The numpy forward pass in pixel tiles: fast, bounded memory, the same pixels as a whole-frame pass.

Every layer of the decoder treats pixels independently, so a frame is decoded ``tile_pixels`` pixels
(8192) at a time: the coordinates of a tile, every trunk step, the readout and the conversion to 8-bit
all run while the tile's activations (8192 x 64 float32 = 2 MiB) stay in the CPU's cache, in
preallocated buffers, with no temporary arrays (``ArchDecoder.trunk_tile``). A whole-frame pass
streams every layer's activations through memory instead and was 3x slower (docs/FORMAT.md,
"Decoding speed"). Each pixel sees exactly the same float32 operations in the same order as in
:meth:`ArchDecoder.trunk`, so the output is identical bit for bit (tests/test_tiles.py).

For progressive decoding the trunk activations of every step of the deepest prefix decoded so far are
kept per output size (:class:`ActivationCache`) while they fit the budget's activation memory (else
those of the deepest step only): a new stage then costs one layer and a readout. The cache is keyed by
the trunk steps *and* the version of every unit they read, so a unit whose weights change (a
refinement) recomputes from its own step on and reuses the activations before it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from codec.budget import DecodeBudget
from codec.coords import axis

if TYPE_CHECKING:
    from codec.arch.base import ArchDecoder, Params

TILE_PIXELS = 8192
"""Pixels per tile: 2 MiB of 64-wide float32 activations, inside a core's L2 cache."""
MIN_TILE_PIXELS = 256
BUFFERS_PER_TILE = 4
"""Tile-sized activation buffers a decode holds at once (two for the trunk, the readout, a margin
for the families without an in-place path), for the activation budget."""
CACHED_SIZES = 2


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # an install without it decodes with BLAS's own thread count
        return None
    return ThreadpoolController()  # after numpy (imported above) has loaded its BLAS


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while a frame is decoded (a ``with`` block or a decorator): a tile's
    matmuls are too small to share out (OpenBLAS's two threads made a 1024 x 1024 DINER decode 6.4x
    slower on a busy 2-core machine), and a server or an experiment already runs one decode per core
    (``threadpoolctl``: the one library that sets the thread count of whichever BLAS numpy loaded)."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


class Workspace:
    """Tile-sized scratch buffers, allocated once per decoder and reused for every tile and layer."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int, str], np.ndarray] = {}

    def get(self, name: str, rows: int, cols: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A (rows, cols) buffer (contents undefined)."""
        key = (name, cols, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < rows:
            buf = self._buffers[key] = np.empty((rows, cols), dtype=dtype)
        return buf[:rows]

    def other(self, h: np.ndarray, cols: int) -> np.ndarray:
        """A (len(h), cols) buffer that does not overlap ``h``: a layer's output beside its input."""
        for name in ("trunk.a", "trunk.b"):
            buf = self.get(name, h.shape[0], cols)
            if not np.may_share_memory(buf, h):
                return buf
        raise AssertionError("two trunk buffers cannot both overlap one input")

    def clear(self) -> None:
        self._buffers.clear()


def add_bias(z: np.ndarray, b: np.ndarray) -> None:
    """``z += b`` for a narrow C-contiguous (rows, cols) ``z`` (a readout's 3 columns), the same
    additions in longer loops: numpy broadcasts a row vector one row at a time, 8192 calls of a
    3-element loop per tile, so ``z`` is seen as (rows / r, r * cols) and ``b`` repeated r times."""
    rows, cols = z.shape
    r = 1
    while r < 64 and rows % (2 * r) == 0:
        r *= 2
    if r == 1 or not z.flags.c_contiguous:
        z += b
    else:
        z.reshape(rows // r, r * cols)[...] += np.tile(b, r)


def coords_tile(xs: np.ndarray, ys: np.ndarray, start: int, out: np.ndarray) -> np.ndarray:
    """Rows ``start:start + len(out)`` of :func:`codec.coords.grid` (the same values) without the whole
    grid; rows past the last pixel repeat it (a padded tile)."""
    idx = np.minimum(np.arange(start, start + len(out)), len(xs) * len(ys) - 1)
    row, col = np.divmod(idx, len(xs))
    out[:, 0] = xs[col]
    out[:, 1] = ys[row]
    return out


def rgb8_tile(y: np.ndarray, out: np.ndarray) -> None:
    """:func:`codec.coords.to_rgb8` of one tile into ``out`` (N, 3) uint8, the same operations in place."""
    if y.dtype != np.float32:
        y = y.astype(np.float32)
    y += np.float32(1.0)
    y *= np.float32(0.5)
    np.clip(y, 0.0, 1.0, out=y)
    np.nan_to_num(y, copy=False, nan=0.0)  # a NaN (overflowing hostile weights) is 0, as in the browser
    y *= np.float32(255.0)
    np.rint(y, out=y)
    out[...] = y.astype(np.uint8)


@dataclass
class _Entry:
    key: tuple[Hashable, ...]
    acts: dict[int, np.ndarray]
    """Trunk activations after step i of ``key`` (every step, or the deepest only when they do not fit)."""


class ActivationCache:
    """The deepest trunk activations decoded per output size, within a byte budget (LRU)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], _Entry] = OrderedDict()

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for e in self._entries.values() for a in e.acts.values())

    def get(self, size: tuple[int, int]) -> _Entry | None:
        entry = self._entries.get(size)
        if entry is not None:
            self._entries.move_to_end(size)
        return entry

    def reserve(self, size: tuple[int, int], nbytes: int) -> bool:
        """Make room for ``nbytes`` for ``size`` (dropping its old entry and the least recently used
        others); False, with nothing dropped, when it cannot fit at all."""
        if nbytes > self.max_bytes:
            return False
        self._entries.pop(size, None)
        while self._entries and (self.nbytes + nbytes > self.max_bytes or len(self._entries) >= CACHED_SIZES):
            self._entries.popitem(last=False)
        return True

    def put(self, size: tuple[int, int], key: tuple[Hashable, ...], acts: dict[int, np.ndarray]) -> None:
        self._entries[size] = _Entry(key, acts)
        self._entries.move_to_end(size)

    def drop(self, size: tuple[int, int]) -> None:
        self._entries.pop(size, None)

    def clear(self) -> None:
        self._entries.clear()


class TiledForward:
    """One decoder's forward pass: tiles, the workspace and the activation cache."""

    def __init__(self, arch: ArchDecoder, budget: DecodeBudget, cache: bool = True) -> None:
        self.arch = arch
        self.budget = budget
        self.workspace = Workspace()
        per_pixel = 4 * arch.activation_floats() * BUFFERS_PER_TILE
        fits = budget.max_activation_bytes // per_pixel
        self.tile_pixels = int(min(TILE_PIXELS, max(MIN_TILE_PIXELS, fits)))
        self.tile_bytes = self.tile_pixels * per_pixel
        budget.check_tile(self.tile_bytes, arch.describe())
        self.cache = ActivationCache(budget.max_activation_bytes - self.tile_bytes if cache else 0)
        self.computed_steps = 0
        """Trunk steps the last :meth:`run` computed (the others came from the cache)."""

    @one_blas_thread()  # a fresh limit for each call (contextlib's ContextDecorator)
    def run(
        self,
        size: tuple[int, int],
        steps: Sequence[int],
        key: tuple[Hashable, ...],
        depth: int,
        params: Params,
    ) -> np.ndarray:
        """(height, width, 3) uint8 of trunk ``steps`` then readout ``depth``; ``key`` names the
        trunk's activations (one entry per step, equal prefixes meaning equal activations)."""
        w, h = size
        n = w * h
        arch, ws = self.arch, self.workspace
        xs, ys = axis(w), axis(h)
        rgb = np.empty((n, 3), dtype=np.uint8)
        hit = self.cache.get(size)
        done = 0  # leading steps whose activations come from the cache
        if hit is not None:
            for i in range(min(len(key), len(hit.key)), 0, -1):
                if i - 1 in hit.acts and key[:i] == hit.key[:i]:
                    done = i
                    break
        todo = list(steps[done:])
        src = hit.acts[done - 1] if hit is not None and done else None
        keep = {i: a for i, a in hit.acts.items() if i < done} if hit is not None else {}
        # Every step's activations are kept when they fit (a refinement of the unit of step k then
        # resumes after step k - 1), else the deepest only; a shallower request leaves a deeper entry.
        deeper = hit is not None and len(hit.key) > len(key) and hit.key[: len(key)] == key
        every = store = bool(todo) and not deeper
        if store:
            sizes = [n * b for b in self._step_bytes(todo, src, params)]
            if not self.cache.reserve(size, sum(a.nbytes for a in keep.values()) + sum(sizes)):
                every, keep = False, {}
                store = self.cache.reserve(size, sizes[-1])
        outs: dict[int, np.ndarray] = {}
        # Every tile of a frame has the same number of rows (the last one padded): BLAS picks its
        # kernel, and so its order of summation, by shape, so this makes a pixel's value independent
        # of where tiles fall. A frame of one tile is computed whole, exactly as a whole-frame pass.
        rows = min(n, self.tile_pixels)
        last = len(steps) - 1
        for start in range(0, n, self.tile_pixels):
            stop = min(n, start + self.tile_pixels)
            m = stop - start
            if src is not None:  # a copy: a trunk step may overwrite its input
                cur = ws.get("resume", rows, src.shape[1], src.dtype)
                cur[:m] = src[start:stop]
                cur[m:] = 0
            else:
                cur = coords_tile(xs, ys, start, ws.get("coords", rows, 2))
            for i, k in enumerate(todo, start=done):
                cur = arch.trunk_tile(k, cur, params, ws)
                if store and (every or i == last):
                    out = outs.get(i)
                    if out is None:
                        out = outs[i] = np.empty((n, cur.shape[1]), dtype=cur.dtype)
                    out[start:stop] = cur[:m]
            rgb8_tile(arch.readout_tile(depth, cur, params, ws)[:m], rgb[start:stop])
        if store:
            self.cache.put(size, key, keep | outs)
        self.computed_steps = len(todo)
        return rgb.reshape(h, w, 3)

    def _step_bytes(self, todo: list[int], src: np.ndarray | None, params: Params) -> list[int]:
        """Bytes per pixel of each step's activations, from a one-pixel dry run."""
        cur = np.zeros((1, 2), np.float32) if src is None else src[:1].copy()
        out = []
        for k in todo:
            cur = np.asarray(self.arch.trunk(k, cur, params))  # the plain path: no workspace, no tile count
            out.append(cur.shape[1] * cur.dtype.itemsize)
        return out

    def clear(self) -> None:
        self.cache.clear()
        self.workspace.clear()
