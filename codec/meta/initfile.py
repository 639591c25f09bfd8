"""The θ0 file (``.spnri``): a shared initialisation's weights, its arch and its content hash.

Never pickle, never ``torch.load``: the same kind of framing as a bitstream (docs/FORMAT.md, "θ0 files").

    magic "SPNRI" | version u8 | info length varint | info (bounded msgpack map) | weights | sha256 (32)

The weights are float32 little-endian, every tensor of ``decoder_for(model, arch).units()`` in that
order; the info map names the model, its arch fields, the tensor shapes (checked against the ones the
arch implies) and the content hash; ``meta`` holds what trained it (and, in a meta-training
checkpoint, where to resume). The trailing sha256 covers every byte before it, so any damage is found.

The **content hash** names θ0 in a stream's header (extension 0x83): the first ``HASH_BYTES`` of
sha256("spinr-theta0" | model id | arch record | weights). It depends only on what a decoder computes
with, not on the training notes, so two files holding the same θ0 have the same hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codec.arch import MODEL_IDS, decoder_for, write_arch
from codec.errors import BitstreamError, InitError, brief
from codec.mpack import check_plain, pack, unpack_map
from codec.units import UnitSpec
from codec.varint import Reader, uvarint

MAGIC = b"SPNRI"
VERSION = 1
HASH_BYTES = 8
"""Bytes of the content hash a header carries (64 bits: a collision among shipped files is moot)."""
DIGEST_BYTES = 32
MAX_INFO_BYTES = 1 << 20
MAX_FILE_BYTES = 64 * 2**20
SUFFIX = ".spnri"

Weights = dict[int, dict[str, np.ndarray]]
"""unit index -> tensor name -> float32 array (the decoder's ``params`` layout)."""


def content_hash(model: str, arch: Mapping[str, Any], weights: Weights) -> bytes:
    """The θ0's identity: depends on the model, its arch fields and the float32 weights only."""
    h = hashlib.sha256(b"spinr-theta0")
    h.update(bytes([MODEL_IDS[model]]))
    h.update(write_arch(model, dict(arch)))
    for u in sorted(weights):
        for name in weights[u]:
            h.update(np.ascontiguousarray(weights[u][name], dtype="<f4").tobytes())
    return h.digest()[:HASH_BYTES]


@dataclass
class InitFile:
    """A θ0: ``weights`` for every unit of a ``model`` with ``arch`` (the header's arch fields)."""

    model: str
    arch: dict[str, Any]
    weights: Weights
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            specs = decoder_for(self.model, self.arch).units()
        except BitstreamError as exc:
            raise InitError(f"θ0 arch is invalid: {exc}") from None
        check_weights(self.weights, specs, f"θ0 of {self.model}")
        self.weights = {
            u: {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in t.items()}
            for u, t in self.weights.items()
        }

    @property
    def specs(self) -> list[UnitSpec]:
        return decoder_for(self.model, self.arch).units()

    @property
    def hash(self) -> bytes:
        return content_hash(self.model, self.arch, self.weights)

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    def to_bytes(self) -> bytes:
        info = {
            "model": self.model,
            "arch": self.arch,
            "units": [[s.name, [[n, list(shape)] for n, shape in s.tensors]] for s in self.specs],
            "hash": self.hash_hex,
            "meta": self.meta,
        }
        check_plain(info, "θ0 info")
        raw = pack(info)
        body = MAGIC + bytes([VERSION]) + uvarint(len(raw)) + raw
        body += b"".join(
            self.weights[u][n].astype("<f4").tobytes() for u, s in enumerate(self.specs) for n, _ in s.tensors
        )
        return body + hashlib.sha256(body).digest()

    @classmethod
    def parse(cls, data: bytes, what: str = "θ0 file") -> InitFile:
        """Bytes -> θ0; InitError naming ``what`` and the first thing wrong."""
        data = bytes(data)
        if len(data) > MAX_FILE_BYTES:
            raise InitError(f"{what} is {len(data)} bytes; at most {MAX_FILE_BYTES}")
        if data[: len(MAGIC)] != MAGIC:
            raise InitError(f"{what} is not a θ0 file: it starts {data[:5]!r}, expected {MAGIC!r}")
        if len(data) < len(MAGIC) + 1 + DIGEST_BYTES:
            raise InitError(f"{what} is truncated: {len(data)} bytes")
        body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
        if hashlib.sha256(body).digest() != digest:
            raise InitError(f"{what} is damaged: its sha256 does not match its contents")
        if body[len(MAGIC)] != VERSION:
            raise InitError(f"{what} has version {body[len(MAGIC)]}; this reader knows version {VERSION}")
        r = Reader(body, what, len(MAGIC) + 1)
        try:
            size = r.uvarint_in(0, MAX_INFO_BYTES, "info length")
            info = unpack_map(r.take(size, "info"), f"{what} info")
            check_plain(info, f"{what} info")
        except InitError:
            raise
        except BitstreamError as exc:
            raise InitError(f"{what}: {exc}") from None
        model, arch = info.get("model"), info.get("arch")
        if model not in MODEL_IDS or not isinstance(arch, dict):
            raise InitError(
                f"{what} names model {brief(model)} with arch {brief(arch)}; expected a known model and a map"
            )
        try:
            specs = decoder_for(model, arch).units()
        except BitstreamError as exc:
            raise InitError(f"{what}: its arch is invalid: {exc}") from None
        listed = info.get("units")
        derived = [[s.name, [[n, list(shape)] for n, shape in s.tensors]] for s in specs]
        if listed != derived:
            raise InitError(f"{what} lists units {brief(listed)}; its {model} arch implies {brief(derived)}")
        need = 4 * sum(sum(s.sizes) for s in specs)
        if r.left != need:
            raise InitError(f"{what} holds {r.left} bytes of weights; its {model} arch needs {need}")
        flat = np.frombuffer(body, dtype="<f4", offset=r.pos).astype(np.float32)
        if not np.all(np.isfinite(flat)):
            raise InitError(f"{what} holds non-finite weights")
        weights: Weights = {}
        at = 0
        for u, s in enumerate(specs):
            weights[u] = {}
            for (n, shape), size in zip(s.tensors, s.sizes, strict=True):
                weights[u][n] = flat[at : at + size].reshape(shape)
                at += size
        meta = info.get("meta", {})
        init = cls(model, dict(arch), weights, meta if isinstance(meta, dict) else {})
        if info.get("hash") != init.hash_hex:
            raise InitError(
                f"{what} says its hash is {brief(info.get('hash'))}; its contents hash to {init.hash_hex}"
            )
        return init

    def check_matches(self, model: str, arch: Mapping[str, Any], prefix: bool = False) -> None:
        """InitError unless this θ0 is for ``model`` with ``arch``, naming the first difference. With
        ``prefix`` (a decoder's check) a stream may have fewer hidden layers than θ0 when its units are
        θ0's first units, same names and shapes: a trimmed SPINR stream (``--trim``), whose stages are
        residuals from θ0's first stages. Every other arch key must be equal."""
        if model != self.model:
            raise InitError(f"θ0 {self.hash_hex} is for {self.model}, the stream is {model}")
        for key in sorted(set(arch) | set(self.arch)):
            mine, theirs = self.arch.get(key), arch.get(key)
            if prefix and key == "hidden_layers" and _shallower(theirs, mine):
                continue
            if theirs != mine:
                raise InitError(
                    f"θ0 {self.hash_hex} has {key}={brief(mine)}, the stream {key}={brief(theirs)}"
                )
        if prefix and arch.get("hidden_layers") != self.arch.get("hidden_layers"):
            try:
                wanted = decoder_for(model, dict(arch)).units()
            except BitstreamError as exc:
                raise InitError(f"θ0 {self.hash_hex}: the stream's arch is invalid: {exc}") from None
            have = self.specs
            if [(s.name, s.tensors) for s in wanted] != [(s.name, s.tensors) for s in have[: len(wanted)]]:
                raise InitError(
                    f"θ0 {self.hash_hex} has hidden_layers={self.arch.get('hidden_layers')}, the stream"
                    f" hidden_layers={arch.get('hidden_layers')}, and the stream's units are not θ0's first units"
                )


def _shallower(stream: Any, theta0: Any) -> bool:
    """Both are hidden-layer counts and the stream's is the smaller."""
    depths = [v for v in (stream, theta0) if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    return len(depths) == 2 and stream < theta0


def check_weights(weights: Weights, specs: list[UnitSpec], what: str) -> None:
    """Exactly the units, tensor names and shapes ``specs`` lists (InitError naming the first that is not)."""
    if sorted(weights) != list(range(len(specs))):
        raise InitError(f"{what} has units {sorted(weights)}; its arch has {len(specs)} units")
    for u, s in enumerate(specs):
        names = [n for n, _ in s.tensors]
        if list(weights[u]) != names:
            raise InitError(f"{what} unit {u} ({s.name}) has tensors {list(weights[u])}; expected {names}")
        for n, shape in s.tensors:
            got = tuple(np.shape(weights[u][n]))
            if got != tuple(shape):
                raise InitError(
                    f"{what} unit {u} ({s.name}) tensor {n!r} has shape {list(got)}; expected {list(shape)}"
                )


def read_init(path: str | os.PathLike[str]) -> InitFile:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InitError(f"cannot read θ0 file {os.fspath(path)!r}: {exc.strerror or exc}") from None
    return InitFile.parse(data, f"θ0 file {os.fspath(path)!r}")


def write_init(path: str | os.PathLike[str], init: InitFile) -> None:
    """Atomically (a checkpoint interrupted mid-write leaves the previous one)."""
    target = Path(path)
    data = init.to_bytes()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o644)  # mkstemp makes 0600; a θ0 is package data, not a secret
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
