"""A target that misbehaves on cue, to prove the driver notices every kind of "anything else"."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fuzz.targets import Outcome, _guard

_KEPT: list[bytes] = []


def misbehave(data: bytes, _: Path) -> Outcome:
    def run() -> Outcome:
        if data == b"BOOM":
            raise KeyError("boom")
        if data == b"HANG":  # blocked: no CPU used
            time.sleep(60)
        if data == b"SPIN":  # busy: CPU used without end
            while True:
                pass
        if data in (b"SLOW", b"HALF"):  # 1.5 or 0.6 CPU s
            end = time.process_time() + (1.5 if data == b"SLOW" else 0.6)
            while time.process_time() < end:
                pass
        if data == b"GROW":
            _KEPT.append(b"\x01" * (300 << 20))  # written, so resident
        if data == b"DIE":
            os._exit(3)
        return Outcome("ok")

    return _guard(run)


SELFTEST = {"selftest": misbehave, "selftest2": misbehave}
"""Two entry points that misbehave alike (the 2 s rule is judged per entry point)."""
