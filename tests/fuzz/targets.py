"""The decode entry points an input goes through, and how each outcome is classified.

``ok``: it decoded (or parsed). ``error``: a documented error, the way the entry point promises
(``BitstreamError`` and the other ``SpinrError``s from the library; a status with ``accepted=False``
from ``add_packet``; exit status 1 with one ``spinr CMD: error: ...`` line from the CLI). Anything else
is a ``crash``, with the exception type and the innermost project frame as its signature.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from codec.errors import SpinrError

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    kind: str
    """``ok``, ``error`` or ``crash``."""
    detail: str = ""
    """Error text, or for a crash ``Type: message``."""
    place: str = ""
    """For a crash: the innermost frame in the project's code, ``codec/arch.py:123 in trunk``."""

    @property
    def signature(self) -> str:
        return f"{self.detail.split(':', 1)[0]} at {self.place}"


def crash_place(tb: object) -> str:
    frames = traceback.extract_tb(tb)  # type: ignore[arg-type]
    ours = [f for f in frames if f.filename.startswith(str(REPO)) and "/.venv/" not in f.filename]
    f = (ours or frames)[-1] if (ours or frames) else None
    if f is None:
        return "?"
    name = os.path.relpath(f.filename, REPO) if f.filename.startswith(str(REPO)) else f.filename
    return f"{name}:{f.lineno} in {f.name}"


def _guard(fn: Callable[[], Outcome]) -> Outcome:
    try:
        return fn()
    except SpinrError as exc:
        return Outcome("error", str(exc)[:200])
    except BaseException as exc:  # noqa: BLE001 - this is what the harness is for
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:200]}", crash_place(exc.__traceback__))


def load_strict(data: bytes, _: Path) -> Outcome:
    from codec.bitstream import load_bitstream

    return _guard(lambda: (load_bitstream(data, strict=True), Outcome("ok"))[1])


def load_lenient(data: bytes, _: Path) -> Outcome:
    from codec.bitstream import load_bitstream

    return _guard(lambda: (load_bitstream(data, strict=False), Outcome("ok"))[1])


def _records(data: bytes) -> list[bytes]:
    """The file's packets as a receiver of separate messages would see them (framing read leniently):
    a v2 file (first byte 0x53) split where each packet's own length says, the rest of the file as one
    message once a head cannot be read; anything else as v1's u32-prefixed records."""
    from codec.packets import MAGIC, Packet

    out, offset = [], 0
    if data[:1] == bytes([MAGIC]):
        while offset < len(data) and len(out) < 4096:
            try:
                size = Packet.peek(data, offset).size
            except SpinrError:
                size = len(data) - offset
            out.append(data[offset : offset + size])
            offset += size
        return out
    while offset + 4 <= len(data) and len(out) < 4096:
        n = int.from_bytes(data[offset : offset + 4], "big")
        out.append(data[offset + 4 : offset + 4 + n])
        offset += 4 + n
    return out


def add_packets(data: bytes, _: Path) -> Outcome:
    """``ProgressiveDecoder.add_packet`` for every record: it must never raise, only report."""
    from codec.decoder import ProgressiveDecoder

    def run() -> Outcome:
        dec = ProgressiveDecoder()
        for record in _records(data):
            status = dec.add_packet(record)
            if not isinstance(status.accepted, bool):
                return Outcome("crash", f"TypeError: status.accepted is {status.accepted!r}", "add_packet")
        return Outcome("ok")

    return _guard(run)


def progressive_decode(data: bytes, _: Path) -> Outcome:
    """``add_packet`` for every record, then ``decode()`` as a streaming client would."""
    from codec.decoder import ProgressiveDecoder

    def run() -> Outcome:
        dec = ProgressiveDecoder()
        for record in _records(data):
            dec.add_packet(record)
        out = dec.decode()
        if out.rgb.dtype.name != "uint8" or out.rgb.ndim != 3:
            return Outcome("crash", f"ValueError: decoded array {out.rgb.dtype} {out.rgb.shape}", "decode")
        return Outcome("ok")

    return _guard(run)


def _cli(argv: list[str], check: Callable[[str], str | None]) -> Outcome:
    from client.cli import main

    out, err = io.StringIO(), io.StringIO()

    def run() -> Outcome:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        text = err.getvalue()
        if rc == 1 and text.count("\n") == 1 and text.startswith(f"spinr {argv[0]}: error: "):
            return Outcome("error", text.strip()[:200])
        if rc == 0:
            problem = check(out.getvalue())
            return Outcome("ok") if problem is None else Outcome("crash", problem, f"spinr {argv[0]}")
        return Outcome("crash", f"ExitStatus: {rc} with stderr {text[-300:]!r}", f"spinr {argv[0]}")

    outcome = _guard(run)
    if outcome.kind == "error" and not outcome.detail.startswith("spinr "):
        # A SpinrError escaped main(): main is supposed to turn those into exit status 1.
        return Outcome("crash", f"SpinrError escaped main: {outcome.detail}", f"spinr {argv[0]}")
    return outcome


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_problem(stdout: str) -> str | None:
    try:
        json.loads(stdout, parse_constant=_no_constants)
    except ValueError as exc:
        return f"InvalidJSON: {exc}"
    return None


def cli_info(data: bytes, workdir: Path) -> Outcome:
    path = workdir / "input.spnr"
    path.write_bytes(data)
    return _cli(["info", str(path), "--json"], _json_problem)


def cli_decode(data: bytes, workdir: Path) -> Outcome:
    path, png = workdir / "input.spnr", workdir / "out.png"
    path.write_bytes(data)
    png.unlink(missing_ok=True)
    return _cli(
        ["decode", str(path), "-o", str(png), "--lenient"],
        lambda _: None if png.is_file() and png.stat().st_size > 0 else "MissingOutput: no PNG written",
    )


TARGETS: dict[str, Callable[[bytes, Path], Outcome]] = {
    "load_strict": load_strict,
    "load_lenient": load_lenient,
    "add_packet": add_packets,
    "decode": progressive_decode,
    "cli_info": cli_info,
    "cli_decode": cli_decode,
}
PARSING = ("load_strict", "load_lenient", "cli_info")
"""Entry points that stop before the numpy forward pass (and before ``decoder_for`` reads the arch)."""


def run_all(data: bytes, names: tuple[str, ...], workdir: Path) -> dict[str, Outcome]:
    return {name: TARGETS[name](data, workdir) for name in names}


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="spinr-fuzz-") as tmp:
        yield Path(tmp)
