"""G.711: every 16-bit sample encodes as the ITU reference does (and as audioop did)."""

import array
import warnings

import pytest

from outdial.media import g711
from outdial.media.errors import MediaError

EVERY_SAMPLE = array.array("h", range(-32768, 32768)).tobytes()


def ulaw_decode(code: int) -> int:
    """The G.711 µ-law expansion, written from the standard's formula."""
    u = ~code & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - magnitude if u & 0x80 else magnitude - 0x84


def alaw_decode(code: int) -> int:
    """The G.711 A-law expansion, written from the standard's formula."""
    a = code ^ 0x55
    segment = (a & 0x70) >> 4
    magnitude = (a & 0x0F) << 4
    magnitude += 8 if segment == 0 else 0x108
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if a & 0x80 else -magnitude


def samples(*values: int) -> bytes:
    return array.array("h", values).tobytes()


def test_known_values() -> None:
    assert g711.encode(samples(0, 32767, -32768, -1, 1000, -1000), "PCMU") == bytes(
        [0xFF, 0x80, 0x00, 0x7E, 0xCE, 0x4E])
    assert g711.encode(samples(0, 32767, -32768, -1, 1000, -1000), "PCMA") == bytes(
        [0xD5, 0xAA, 0x2A, 0x55, 0xFA, 0x7A])
    assert g711.silence("PCMU") == 0xFF and g711.silence("PCMA") == 0xD5


@pytest.mark.parametrize(("codec", "decode"), [("PCMU", ulaw_decode), ("PCMA", alaw_decode)])
def test_every_code_decoded_encodes_back_to_itself(codec: str, decode) -> None:
    codes = range(256)
    encoded = g711.encode(samples(*(decode(c) for c in codes)), codec)
    # µ-law has two zeros (0x7F and 0xFF); zero encodes as 0xFF.
    expected = bytes(0xFF if (codec, c) == ("PCMU", 0x7F) else c for c in codes)
    assert encoded == expected


@pytest.mark.parametrize(("codec", "decode"), [("PCMU", ulaw_decode), ("PCMA", alaw_decode)])
def test_every_sample_lands_on_a_nearest_step(codec: str, decode) -> None:
    """Quantization error is within half a step of the code's segment, for all 65536 samples."""
    encoded = g711.encode(EVERY_SAMPLE, codec)
    worst = {}
    for sample, code in zip(range(-32768, 32768), encoded, strict=True):
        error = abs(decode(code) - sample)
        worst[code] = max(worst.get(code, 0), error)
    assert len(encoded) == 65536
    assert max(worst.values()) <= 1024 + 32  # the widest segment's half step, plus clipping


def test_byte_identical_to_audioop_where_it_still_exists() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            pytest.skip("audioop was removed from this Python; the decode tests cover it")
    assert g711.encode(EVERY_SAMPLE, "PCMU") == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert g711.encode(EVERY_SAMPLE, "PCMA") == audioop.lin2alaw(EVERY_SAMPLE, 2)


def test_bad_input_is_refused() -> None:
    with pytest.raises(MediaError, match="even number of bytes"):
        g711.encode(b"\x00\x01\x02", "PCMU")
    with pytest.raises(MediaError, match="PCMU or PCMA"):
        g711.encode(b"", "G722")
