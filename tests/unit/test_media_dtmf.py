"""RFC 4733 telephone-events: one key press reported once, from packets built as the RFC says."""

import struct

import pytest

from outdial.media.dtmf import TelephoneEventReceiver
from tests.media_support import (
    key_press,
    read_pcap_udp_payloads,
    require_sipp_pcap,
    telephone_event,
)


def feed(receiver: TelephoneEventReceiver, packets: list[bytes]) -> str:
    """RTP packets (12-byte headers) through the receiver → the keys it reported."""
    keys = ""
    for packet in packets:
        timestamp = struct.unpack_from("!I", packet, 4)[0]
        keys += receiver.receive(timestamp, packet[12:]) or ""
    return keys


def test_a_press_with_repeats_and_three_end_packets_is_one_key() -> None:
    assert feed(TelephoneEventReceiver(), key_press(5, 8000, 100)) == "5"


def test_every_dtmf_event_code_has_its_key() -> None:
    receiver = TelephoneEventReceiver()
    packets = [p for code in range(16) for p in key_press(code, 1000 * (code + 1), 10 * code)]
    assert feed(receiver, packets) == "0123456789*#ABCD"


def test_the_same_key_twice_is_two_presses() -> None:
    packets = key_press(1, 8000, 1) + key_press(1, 9600, 20)
    assert feed(TelephoneEventReceiver(), packets) == "11"


def test_a_lost_first_packet_still_reports_the_key_once() -> None:
    assert feed(TelephoneEventReceiver(), key_press(9, 4000, 7)[2:]) == "9"


def test_end_packets_arriving_late_or_repeated_do_not_repeat_the_key() -> None:
    first, second = key_press(3, 100, 1), key_press(4, 2000, 20)
    # the second press begins while the first one's last end packet is still on its way
    packets = first[:-1] + second[:2] + [first[-1]] + second[2:]
    assert feed(TelephoneEventReceiver(), packets) == "34"


def test_flash_and_unknown_events_are_not_keys() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.receive(100, telephone_event(16, 800, end=True)) is None
    assert receiver.receive(200, telephone_event(70, 800)) is None
    assert receiver.receive(300, b"\x01\x0a") is None  # shorter than an event


def test_a_long_event_cut_into_segments_is_one_press() -> None:
    """Past 0xFFFF samples of duration the sender starts a new segment at ts + duration."""
    receiver = TelephoneEventReceiver()
    assert receiver.receive(1000, telephone_event(7, 0xFFFF)) == "7"
    assert receiver.receive(1000 + 0xFFFF, telephone_event(7, 800)) is None
    assert receiver.receive(1000 + 0xFFFF, telephone_event(7, 1600, end=True)) is None
    assert receiver.receive(1000 + 0xFFFF + 1600 + 800, telephone_event(7, 160)) == "7"


def test_timestamps_wrap_around() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.receive(0xFFFFFF00, telephone_event(2, 0xFFFF)) == "2"
    assert receiver.receive((0xFFFFFF00 + 0xFFFF) & 0xFFFFFFFF, telephone_event(2, 160)) is None


@pytest.mark.parametrize(
    ("name", "key"),
    [(f"dtmf_2833_{n}.pcap", str(n)) for n in range(10)]
    + [("dtmf_2833_star.pcap", "*"), ("dtmf_2833_pound.pcap", "#")],
)
def test_sipps_shipped_dtmf_captures(name: str, key: str) -> None:
    """The packets SIPp's play_pcap_audio sends, as captured in the files sip-tester ships."""
    packets = read_pcap_udp_payloads(require_sipp_pcap(name))
    assert packets and all(p[1] & 0x7F == 101 for p in packets)
    assert feed(TelephoneEventReceiver(), packets) == key
