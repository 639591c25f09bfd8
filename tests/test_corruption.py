"""Damaged and hostile v2 ``.spnr`` files: every truncation, random bit flips, damaged length fields and
garbage (lenient reading resynchronises on the next intact packet), crafted fields, and bounds on the
work a hostile file can cause."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _bitstreams import codes_of, make_stream, raw_packet

import codec.files as files_mod
from codec.bitstream import load_bitstream, read_stream
from codec.errors import BitstreamError
from codec.packets import Packet, PacketType

SID = 0x5EED


def _offsets(bs_bytes: bytes) -> list[int]:
    """Start offset of every packet, plus the end of the file."""
    out, off = [0], 0
    while off < len(bs_bytes):
        off += Packet.peek(bs_bytes, off).size
        out.append(off)
    return out


def _packet_at(offsets: list[int], pos: int) -> int:
    return max(k for k, off in enumerate(offsets[:-1]) if off <= pos)


def _same_codes(a: dict[int, list[np.ndarray]], b: dict[int, list[np.ndarray]], skip: set[int]) -> bool:
    keys = set(a) - skip
    return set(b) == keys and all(
        all(np.array_equal(x, y) for x, y in zip(a[k], b[k], strict=True)) for k in keys
    )


@pytest.fixture(scope="module")
def small() -> tuple[bytes, dict[int, list[np.ndarray]]]:
    bs = make_stream(width=4, hidden=1)
    return bs.to_bytes(), codes_of(bs)


def test_every_truncation_length(small: tuple[bytes, dict]) -> None:
    data, codes = small
    offsets = _offsets(data)
    assert len(offsets) == 5 and offsets[-1] == len(data)  # header + 3 units
    for n in range(len(data)):
        cut = data[:n]
        for strict in (True, False):
            if n == 0:
                with pytest.raises(BitstreamError, match="file is empty"):
                    load_bitstream(cut, strict)
                continue
            k = _packet_at(offsets, n)
            off = offsets[k]
            if k == 0:
                with pytest.raises(BitstreamError, match=r"header packet \(at offset 0\) is damaged: packet"):
                    load_bitstream(cut, strict)
                continue
            if n == off:  # a clean cut between packets is a valid file with fewer units
                bs, damaged = load_bitstream(cut, strict)
                assert damaged == [] and bs.missing() == list(range(k - 1, 3))
                continue
            msg = rf"packet {k} at offset {off}: packet (is )?truncated"
            if strict:
                with pytest.raises(BitstreamError, match=msg):
                    load_bitstream(cut, strict)
            else:
                bs, damaged = load_bitstream(cut, strict)
                assert len(damaged) == 1 and re.match(msg, damaged[0]), damaged
                assert bs.missing() == list(range(k - 1, 3))
                assert _same_codes(codes, codes_of(bs), set(range(k - 1, 3)))


def test_random_bit_flips(small: tuple[bytes, dict]) -> None:
    """Any flip in a unit packet costs that unit only: the reader finds the next packet whatever field
    was hit (a length, a magic, a stream id, the payload)."""
    data, codes = small
    offsets = _offsets(data)
    rng = np.random.default_rng(2024)
    hits = {"header": 0, "head": 0, "payload": 0}
    for bit in rng.choice(len(data) * 8, size=400, replace=False):
        bad = bytearray(data)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        bad = bytes(bad)
        k = _packet_at(offsets, bit // 8)
        with pytest.raises(BitstreamError):
            load_bitstream(bad, strict=True)
        if k == 0:
            hits["header"] += 1
            with pytest.raises(
                BitstreamError, match=r"header packet \(at offset 0\) is damaged|not a spinr file"
            ):
                load_bitstream(bad, strict=False)
            continue
        hits["head" if bit // 8 - offsets[k] < Packet.peek(data, offsets[k]).head_length else "payload"] += 1
        bs, damaged = load_bitstream(bad, strict=False)
        assert bs.missing() == [k - 1], (bit, damaged)
        assert damaged[0].startswith(f"packet {k} at offset {offsets[k]}: ")
        assert _same_codes(codes, codes_of(bs), {k - 1})
    assert min(hits.values()) > 0, hits  # every part of a packet was hit


def test_strict_names_the_damaged_packet(small: tuple[bytes, dict]) -> None:
    data, _ = small
    offsets = _offsets(data)
    bad = bytearray(data)
    bad[offsets[2] + 15] ^= 0x10  # a payload byte of packet 2
    with pytest.raises(BitstreamError, match=rf"packet 2 at offset {offsets[2]}: bad CRC in packet seq 2"):
        load_bitstream(bytes(bad))


def test_two_damaged_units_lenient() -> None:
    bs = make_stream(hidden=3)
    data = bs.to_bytes()
    offsets = _offsets(data)
    bad = bytearray(data)
    for k in (2, 4):
        bad[offsets[k] + 14 : offsets[k] + 22] = b"\xde\xad\xbe\xef" * 2
    back, damaged = load_bitstream(bytes(bad), strict=False)
    assert back.missing() == [1, 3] and len(damaged) == 2
    assert all("bad CRC" in d for d in damaged)
    assert _same_codes(codes_of(bs), codes_of(back), {1, 3})


@pytest.mark.parametrize("declared", [1, 60, 2**20, 2**24])
def test_damaged_length_field_resynchronises(declared: int) -> None:
    """A unit packet whose length varint is rewritten (shorter, longer, beyond the file): its unit is
    lost, every later packet is found by the scan."""
    bs = make_stream(hidden=3)
    data = bs.to_bytes()
    offsets = _offsets(data)
    p = Packet.parse(data[offsets[2] : offsets[3]])
    forged = raw_packet(p.payload, unit=1, seq=2, length=declared)[: offsets[3] - offsets[2] + 3]
    file = data[: offsets[2]] + forged + data[offsets[3] :]
    back, damaged = load_bitstream(file, strict=False)
    assert back.missing() == [1] and damaged[0].startswith(f"packet 2 at offset {offsets[2]}")
    assert _same_codes(codes_of(bs), codes_of(back), {1})


def test_garbage_between_packets_is_skipped() -> None:
    bs = make_stream(hidden=3)
    data = bs.to_bytes()
    offsets = _offsets(data)
    junk = bytes(np.random.default_rng(5).integers(0, 256, 300, dtype=np.uint8)) + b"\x53\x21\x5e\xed\x07"
    file = data[: offsets[3]] + junk + data[offsets[3] :]
    back, damaged = load_bitstream(file, strict=False)
    assert back.missing() == [] and back.to_bytes() == data
    assert len(damaged) == 1 and damaged[0].startswith(f"packet 3 at offset {offsets[3]}: ")
    with pytest.raises(BitstreamError, match=f"packet 3 at offset {offsets[3]}"):
        load_bitstream(file)


def test_resync_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile bytes made of fake packet starts that each claim a long payload: the scan stops once it
    has checked its budget of CRC bytes, and says the rest is skipped."""
    bs = make_stream()
    data = bs.to_bytes()
    head_end = _offsets(data)[1]
    fake = raw_packet(b"", unit=0, seq=1, length=4000)[:-4]  # CRC and payload missing: never valid
    hostile = data[:head_end] + b"\x00" + (fake + bytes(16)) * 600 + data[head_end:]
    monkeypatch.setattr(files_mod, "MAX_RESYNC_CRC_BYTES", 50_000)
    tried = []
    real = files_mod._packet_at

    def counting(buf: bytes, pos: int) -> tuple[Packet, int]:
        tried.append(pos)
        return real(buf, pos)

    monkeypatch.setattr(files_mod, "_packet_at", counting)
    back, damaged = load_bitstream(hostile, strict=False)
    assert len(tried) < 50  # 50_000 bytes of budget / ~4000 bytes a candidate, plus the main loop
    assert back.missing() == [0, 1, 2, 3]
    assert "within the search bounds" in damaged[-1]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": 0x52}, r"header packet \(at offset 0\) is damaged: bad magic 0x52"),
        ({"version": 9}, r"header packet \(at offset 0\) is damaged: unsupported packet version 9"),
        ({"ptype": 4}, "unknown packet type 4"),
        ({"ptype": 1, "unit": 0, "seq": 1}, "file does not start with a header packet"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_bad_header_packet_is_fatal(fields: dict, match: str, strict: bool) -> None:
    data = make_stream().to_bytes()
    offsets = _offsets(data)
    payload = Packet.parse(data[: offsets[1]]).payload
    header = raw_packet(payload, **({"ptype": 0, "unit": None, "seq": 0} | fields))
    file = header + data[offsets[1] :]
    if fields.get("magic"):
        match = "not a spinr file: first byte 0x52"
    with pytest.raises(BitstreamError, match=match):
        load_bitstream(file, strict)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"magic": 0x52}, "bad magic 0x52"),
        ({"version": 1}, "unsupported packet version 1|a version 1 packet"),
        ({"ptype": 7}, "unknown packet type 7"),
        ({"stream_id": 0xBAD}, "packet of stream 0xbad in a file of stream 0x5eed"),
        ({"ptype": 0, "unit": None, "seq": 0}, "a second header packet"),
        ({"unit": 9}, "unit packet for unit 9, but the header has 4 units"),
    ],
)
def test_bad_unit_packet(fields: dict, match: str) -> None:
    bs = make_stream()
    data = bs.to_bytes()
    offsets = _offsets(data)
    payload = Packet.parse(data[offsets[2] : offsets[3]]).payload
    forged = raw_packet(payload, **({"unit": 1, "seq": 2} | fields))
    file = data[: offsets[2]] + forged + data[offsets[3] :]
    with pytest.raises(BitstreamError, match=match):
        load_bitstream(file)
    back, damaged = load_bitstream(file, strict=False)
    assert back.missing() == [1] and len(damaged) == 1 and re.search(match, damaged[0])


def test_file_structure_errors() -> None:
    data = make_stream().to_bytes()
    offsets = _offsets(data)
    with pytest.raises(BitstreamError, match=r"not a spinr file: first byte 0x89"):
        load_bitstream(b"\x89PNG\r\n" + data)
    result = read_stream(data[: offsets[1]])
    assert result.packets == [] and result.damaged == []
    stranger = make_stream(stream_id=0xBAD).packets()[2]
    with pytest.raises(BitstreamError, match="packet of stream 0xbad in a file of stream 0x5eed"):
        load_bitstream(data + stranger.to_bytes())


def test_valid_crc_but_undecodable_unit() -> None:
    """A CRC-valid unit packet whose payload does not decode (steps and codes for another unit)."""
    bs = make_stream()
    data = bs.to_bytes()
    offsets = _offsets(data)
    wrong = Packet(PacketType.UNIT, SID, 2, 1, bs.units[0].payload).to_bytes()
    file = data[: offsets[2]] + wrong + data[offsets[3] :]
    with pytest.raises(BitstreamError, match=r"unit 1 \(hidden.1\): "):
        load_bitstream(file)
    back, damaged = load_bitstream(file, strict=False)
    assert back.missing() == [1] and damaged[0].startswith("unit 1 (packet seq 2): unit 1 (hidden.1): ")
