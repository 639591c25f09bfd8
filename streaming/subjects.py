"""What a receiver makes of a transmission: a spinr bitstream or a progressive JPEG decoded from the
packets that arrived, scored by PSNR against the original (the packet-loss experiment's *subjects*).

- :class:`InrSubject`: decodes whatever arrived with :class:`codec.decoder.ProgressiveDecoder`;
  results are cached by the set of delivered units (many channel draws deliver the same set).
- :class:`JpegSubject`: a progressive JPEG cut into packets, where a lost packet loses everything
  after it (the byte stream has no resynchronisation points a receiver could use).
- :func:`critical_packets`: the packets every decode of a bitstream needs (protect these).

Nothing decodable is scored as a mid-grey image (:data:`GREY`): what a receiver shows before anything
arrives, and what an INR outputs for y = 0, so every curve has the same floor. What arrives comes from
:func:`streaming.transmission.transmit`.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator, Sequence

import numpy as np

from codec.bitstream import Bitstream
from codec.decoder import ProgressiveDecoder
from codec.errors import BitstreamError, ConfigError
from codec.metrics import psnr
from streaming.transmission import Received, restamp

GREY = 128
"""Pixel value of the picture shown when nothing decodes (header lost, indispensable unit lost, a
SIREN missing any unit, a JPEG prefix without one complete scan)."""


def grey(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, GREY, dtype=np.uint8)


# -- subjects ---------------------------------------------------------------------------------------


def critical_packets(bs: Bitstream) -> list[int]:
    """Packet indices every decode needs: the header (0) and the units in every decodable prefix
    (SPINR: stage 0, plus the shared output layer with the shared head; SIREN: all units)."""
    dec = ProgressiveDecoder.from_bitstream(bs)
    arch = dec.arch
    assert arch is not None
    if not arch.progressive:
        return [0] + [u + 1 for u in range(bs.header.num_units)]
    common = set.intersection(*(set(arch.readout_units(d)) for d in range(arch.depths)))
    units = set(arch.trunk_units(0)) | common
    return [0] + sorted(u + 1 for u in units)


class InrSubject:
    """A spinr bitstream decoded from whatever arrived, with ``conceal`` for gaps in the prefix."""

    def __init__(self, bs: Bitstream, reference: np.ndarray, conceal: str = "prefix") -> None:
        self.packets = [p.to_bytes() for p in bs.packets()]
        self.reference = reference
        self.conceal = conceal
        self.cache: dict[tuple[object, ...], tuple[float, int]] = {}

    def score(self, rec: Received, use_corrupted: bool = False) -> tuple[float, int]:
        """(PSNR in dB, units used) of the decode of ``rec``; damaged packets are parsed with their
        CRC recomputed when ``use_corrupted``, else dropped (CRC detection: corrupted = lost)."""
        data = dict(rec.intact)
        if use_corrupted:
            for i, d in rec.damaged.items():
                fixed = restamp(d)
                if fixed is not None:
                    data[i] = fixed
        # Intact packets are the original bytes, so the index set names them; damaged ones by content.
        key = (frozenset(rec.intact), tuple(sorted((i, d) for i, d in data.items() if i not in rec.intact)))
        if key not in self.cache:
            rgb, used = self._decode(data)
            self.cache[key] = (psnr(rgb, self.reference), used)
        return self.cache[key]

    def _decode(self, data: dict[int, bytes]) -> tuple[np.ndarray, int]:
        if 0 not in data:
            return grey(self.reference.shape), 0
        dec = ProgressiveDecoder(conceal=self.conceal)
        if not dec.add_packet(data[0]).accepted or dec.header is None:
            return grey(self.reference.shape), 0
        for i in sorted(data):
            if i:
                dec.add_packet(data[i])
        try:
            out = dec.decode()
        except BitstreamError:
            return grey(self.reference.shape), 0
        return out.rgb, len(out.units)


@contextlib.contextmanager
def truncated_images_allowed() -> Iterator[None]:
    """Pillow's global LOAD_TRUNCATED_IMAGES switched on for the block, then restored."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` in consecutive packets of the given sizes; the last one takes the remainder, and
    packets past the end of the data are not made (a shorter file needs fewer packets)."""
    if any(s < 1 for s in sizes):
        raise ConfigError(f"packet sizes must be >= 1, got {list(sizes)}")
    out, pos = [], 0
    for i, s in enumerate(sizes):
        if pos >= len(data):
            break
        end = len(data) if i == len(sizes) - 1 else pos + s
        out.append(data[pos:end])
        pos = end
    return out


def intact_prefix(chunks: dict[int, bytes], count: int) -> tuple[bytes, int]:
    """Bytes of packets 0, 1, ... up to the first missing one (everything after a loss is useless
    to a JPEG decoder), and how many packets that is."""
    out = []
    for i in range(count):
        if i not in chunks:
            break
        out.append(chunks[i])
    return b"".join(out), len(out)


_SCAN_END_MARKERS = (0xC4, 0xDA, 0xD9)  # DHT, SOS, EOI: what may follow a complete scan


def complete_scans(data: bytes) -> bytes | None:
    """``data`` cut back to its last complete scan and closed with EOI; None without one complete scan.

    libjpeg shows a scan cut mid-way inconsistently (Pillow even returns an all-black picture for
    some cuts); a progressive viewer shows the last complete scan, so that is what we score. Inside
    entropy-coded data 0xFF is always stuffed (FF 00) or a restart marker, so a marker is unambiguous."""
    first_sos = data.find(b"\xff\xda")
    if first_sos < 0:
        return None
    cut_at = None
    i = data.find(b"\xff", first_sos + 2)
    while 0 <= i < len(data) - 1:
        if data[i + 1] in _SCAN_END_MARKERS:
            cut_at = i
        i = data.find(b"\xff", i + 1)
    if cut_at is None:
        return None
    return data[:cut_at] + b"\xff\xd9"


def decode_jpeg(data: bytes, shape: tuple[int, ...], full: bool = False) -> tuple[np.ndarray, bool]:
    """RGB of a JPEG byte string (``full``: the whole file, else a prefix cut to complete scans), and
    whether anything decoded (else the picture is grey)."""
    from PIL import Image

    body = data if full else complete_scans(data)
    if body is None:
        return grey(shape), False
    try:
        with truncated_images_allowed(), Image.open(io.BytesIO(body)) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, struct.error):
        return grey(shape), False
    return (rgb, True) if rgb.shape == tuple(shape) else (grey(shape), False)


class JpegSubject:
    """A progressive JPEG cut into packets of ``sizes`` bytes; the longest intact prefix is decoded."""

    def __init__(self, data: bytes, sizes: Sequence[int], reference: np.ndarray) -> None:
        self.data = data
        self.packets = cut(data, sizes)
        self.reference = reference
        self.full_psnr = psnr(decode_jpeg(data, reference.shape, full=True)[0], reference)
        self.cache: dict[object, tuple[float, int]] = {}

    def score(self, rec: Received, use_corrupted: bool = False) -> tuple[float, int]:
        """(PSNR, packets used; 0 when nothing decoded). Damaged packets are used as they are when ``use_corrupted`` (a JPEG has
        no check of its own), else they count as lost (a transport checksum dropped them)."""
        chunks = dict(rec.intact)
        if use_corrupted:
            chunks.update({i: d for i, d in rec.damaged.items() if i not in chunks})
        data, n = intact_prefix(chunks, len(self.packets))
        key: object = n if data == self.data[: len(data)] else data
        if key not in self.cache:
            if n == len(self.packets) and data == self.data:
                self.cache[key] = (self.full_psnr, n)
            else:
                rgb, ok = decode_jpeg(data, self.reference.shape, full=n == len(self.packets))
                self.cache[key] = (psnr(rgb, self.reference), n if ok else 0)
        return self.cache[key]
