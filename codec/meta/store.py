"""Where θ0 files are found: the ones shipped in the package, folders named in ``SPINR_INIT_PATH``, and
any registered in this process (the encoder registers the θ0 it used). Looked up by content hash.

The shipped ones (``codec/meta/data/*.spnri``) are meta-trained for the size model's networks at the
mini-Kodak size (192 x 128) across the rate range (docs/SPINR.md, "Meta-learned initialisation");
:func:`nearest` snaps a planned network to the closest shipped one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from codec.errors import ConfigError, InitError
from codec.meta.initfile import SUFFIX, InitFile, read_init

ENV_PATH = "SPINR_INIT_PATH"
"""Extra folders of ``.spnri`` files (``os.pathsep``-separated), searched after the shipped ones."""
MAX_FILES = 256
"""Files read per folder at most (a θ0 store is a handful of small files)."""

_registered: dict[bytes, InitFile] = {}
_cache: dict[str, InitFile] = {}


def shipped_dir() -> Path:
    return Path(str(resources.files("codec.meta") / "data"))


def folders() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return [shipped_dir(), *extra]


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(folder.glob(f"*{SUFFIX}"))[:MAX_FILES]
    except OSError:
        return []


def _load(path: Path) -> InitFile:
    key = f"{path}:{path.stat().st_mtime_ns}"
    if key not in _cache:
        _cache[key] = read_init(path)
    return _cache[key]


def available() -> Iterator[tuple[Path | None, InitFile]]:
    """Every θ0 found: registered ones first, then each folder's files (a damaged file raises)."""
    for init in list(_registered.values()):
        yield None, init
    for folder in folders():
        for path in _files(folder):
            yield path, _load(path)


def shipped() -> list[InitFile]:
    """The θ0 files an ``--init meta`` encode may start from: the package's, then ``SPINR_INIT_PATH``'s."""
    return [_load(p) for folder in folders() for p in _files(folder)]


def register(init: InitFile) -> None:
    _registered[init.hash] = init


def find(digest: bytes) -> InitFile:
    """The θ0 whose content hash is ``digest``; InitError naming it (and where it looked) when absent."""
    if digest in _registered:
        return _registered[digest]
    for _, init in available():
        if init.hash == digest:
            return init
    where = ", ".join(str(f) for f in folders())
    raise InitError(
        f"this stream was coded from θ0 {digest.hex()}, which this decoder does not have"
        f" (looked in {where}; add its .spnri file to {ENV_PATH})"
    )


def path_of(digest: bytes) -> Path | None:
    """The file a θ0 came from (None: registered in memory only, or absent)."""
    for path, init in available():
        if path is not None and init.hash == digest:
            return path
    return None


def nearest(model: str, params: int, hidden_layers: int | None = None) -> InitFile:
    """The shipped θ0 of ``model`` whose parameter count is closest (log scale) to ``params``, with
    ``hidden_layers`` when given; ConfigError when none ships for that model."""
    pool = [i for i in shipped() if i.model == model]
    if hidden_layers is not None:
        pool = [i for i in pool if i.arch["hidden_layers"] == hidden_layers] or pool
    if not pool:
        raise ConfigError(f"no meta-learned θ0 ships for {model}; use --init random (or spinr meta-train)")
    return min(pool, key=lambda i: (abs(math.log(param_count(i) / max(params, 1))), i.hash))


def param_count(init: InitFile) -> int:
    return sum(sum(s.sizes) for s in init.specs)
