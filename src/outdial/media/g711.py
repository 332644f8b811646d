"""G.711 µ-law and A-law encoding of 16-bit linear PCM, by table (exact, no audioop)."""

from outdial.media.errors import MediaError

# Segment ends of the ITU-T G.711 reference (Sun's g711.c, which audioop also follows).
_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for segment, end in enumerate(ends):
        if value <= end:
            return segment
    return len(ends)


def linear_to_ulaw(sample: int) -> int:
    """One signed 16-bit sample to its µ-law byte."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + (0x84 >> 2)  # clip, then add the bias
    segment = _segment(value, _ULAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0xF)) ^ mask


def linear_to_alaw(sample: int) -> int:
    """One signed 16-bit sample to its A-law byte."""
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    segment = _segment(value, _ALAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0xF)) ^ mask


def _table(encode_sample, shift: int) -> bytes:
    """Byte for every 16-bit sample, indexed by the sample read as unsigned (two's complement).

    The code depends only on `sample >> shift`, so each code is computed once and repeated."""
    steps = 0x8000 >> shift
    return b"".join(
        bytes((encode_sample(value << shift),)) * (1 << shift)
        for value in (*range(steps), *range(-steps, 0))
    )


# Built at import (about 50 ms): encoding is then a table look-up per sample.
_TABLES = {"PCMU": _table(linear_to_ulaw, 2), "PCMA": _table(linear_to_alaw, 3)}
CHUNK_SAMPLES = 4000  # encode in slices so a thread encoding a long clip lets others run


def encode(pcm: bytes, codec: str) -> bytes:
    """Native-endian signed 16-bit PCM to G.711 (`codec` is "PCMU" or "PCMA"), one byte a sample."""
    if codec not in ("PCMU", "PCMA"):
        raise MediaError(f"G.711 codec must be PCMU or PCMA, not {codec!r}")
    if len(pcm) % 2:
        raise MediaError("16-bit PCM must have an even number of bytes")
    look_up = _TABLES[codec].__getitem__
    samples = memoryview(pcm).cast("H")
    return b"".join(
        bytes(map(look_up, samples[start : start + CHUNK_SAMPLES]))
        for start in range(0, len(samples), CHUNK_SAMPLES)
    )


def silence(codec: str) -> int:
    """The byte that encodes a zero sample in this codec."""
    return ULAW_SILENCE if codec == "PCMU" else ALAW_SILENCE
