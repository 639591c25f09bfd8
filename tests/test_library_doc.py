"""docs/LIBRARY.md's examples, run as written: every ```python block, in order, as one script.

It runs in a fresh interpreter, in a folder holding ``photo.png`` (a 64x48 photograph crop), with a
real ``spinr serve`` on a loopback port in ``$SPINR_SERVER`` for the streaming example. The blocks'
own asserts check what they claim (packets in any order, lenient reads, depth counting from 1 ...).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from _server import Server, env, png

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "LIBRARY.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_the_library_guide_runs_as_written(tmp_path: Path, photo_crop: np.ndarray) -> None:
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 5  # encode, write/read, decode, stream in memory, stream from a server
    script = tmp_path / "library_guide.py"
    script.write_text("\n\n".join(blocks))
    work = tmp_path / "work"
    work.mkdir()
    (work / "photo.png").write_bytes(png(photo_crop))
    server = Server(tmp_path / "data")
    try:
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=work,
            env={**env(), "SPINR_SERVER": server.url},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "'bpp':" in out and "missing units: [2]" in out
    assert re.search(r"^3 stage\(s\): PSNR \d+\.\d\d dB$", out, re.M)
    assert re.search(r"^\d stage\(s\) from the server, missing \[", out, re.M)
    assert (work / "photo.spnr").stat().st_size > 0 and (work / "zoom-2x.png").stat().st_size > 0
