"""Zone keys are short (a country's list by its prefix) and stand for the very zones they did
when they were written out name by name: the window is open for a key exactly when it is open
in every one of its zones."""

import datetime as dt
import random

from phonenumbers.tzdata import TIMEZONE_DATA

from outdial.strategy.windows import (
    COUNTRY_PREFIXES,
    DEFAULT_ZONE,
    CallingWindow,
    key_of_zones,
    key_state,
    zone_key,
    zones_of_key,
    zones_of_number,
)

WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
          "timezone_default": "Europe/Paris", "holidays": ["2026-07-03"]}


def tel(number: str) -> dict[str, str]:
    return {"type": "tel", "target": number}


def test_a_number_with_no_known_area_code_has_a_key_of_two_bytes() -> None:
    """+1 555 is no area code: the number is in any of the 42 zones of the plan."""
    assert len(zones_of_number("+15555550100")) == 42
    assert zone_key(None, [tel("+15555550100")]) == "+1"
    assert zones_of_key("+1") == set(zones_of_number("+15555550100"))
    # A zone of the country list adds nothing to it; the default zone and other zones do.
    assert zone_key(None, [tel("+12125550100"), tel("+15555550100")]) == "+1"
    assert zone_key(None, [tel("+15555550100"), {"type": "email", "target": "a@b.c"}]) == "* +1"
    assert zone_key(None, [tel("+15555550100"), tel("+819012345678")]) == "+1 Asia/Tokyo"


def test_a_key_is_one_spelling_of_its_zones() -> None:
    """Whichever numbers give a set of zones, its key is the same; read back, it is the set."""
    rng = random.Random(11)
    prefixes = sorted(TIMEZONE_DATA)
    for _ in range(2000):
        numbers = [tel(f"+{rng.choice(prefixes)}5550100") for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.2:
            numbers.append({"type": "email", "target": "a@b.c"})
        zones = set().union(*(zones_of_number(n["target"]) or (DEFAULT_ZONE,) for n in numbers))
        key = zone_key(None, numbers)
        assert zones_of_key(key) == zones
        assert key == key_of_zones(zones) == key_of_zones(zones_of_key(key))
        assert not any(country <= set(key.split(" ")) for country in COUNTRY_PREFIXES.values())


def test_country_lists_are_whole_countries() -> None:
    assert set(COUNTRY_PREFIXES) == {"1", "44", "52", "55", "61", "7"}
    assert zones_of_key("+999 Asia/Tokyo") == {"+999", "Asia/Tokyo"}  # unknown: kept, never open


def test_the_window_of_a_short_key_is_the_window_of_its_zones() -> None:
    """A key's state is the state of the same zones written name by name: the same zones, in
    the same order, around the spring DST change and on a working day, in the window and out."""
    window = CallingWindow.of(WINDOW)
    assert window is not None
    keys = ["+1", "* +1", "+1 Asia/Tokyo", "+7", "+44", "* +52 +61"]
    for key in keys:
        spelled = " ".join(sorted(zones_of_key(key)))
        assert window.zones(key) == window.zones(spelled)
    for now in (dt.datetime(2026, 3, 8, 13, 0), dt.datetime(2026, 6, 1, 20, 0)):
        for key in ("+1", "+44 America/New_York"):
            spelled = " ".join(sorted(zones_of_key(key)))
            assert key_state(window, key, now) == key_state(window, spelled, now), (key, now)
    assert not key_state(window, "+999", dt.datetime(2026, 6, 1, 12, 0)).open


def test_a_number_s_zones_are_those_of_its_longest_known_prefix() -> None:
    """Whatever shortcut finds it: every prefix of the table, followed by more digits."""
    rng = random.Random(12)
    for prefix in sorted(TIMEZONE_DATA):
        for _ in range(3):
            digits = prefix + str(rng.randrange(10 ** rng.randint(0, 8)))
            longest = next((digits[:n] for n in range(min(9, len(digits)), 0, -1)
                            if digits[:n] in TIMEZONE_DATA), None)
            zones = TIMEZONE_DATA[longest] if longest else ()
            assert zones_of_number(f"+{digits}") == (() if zones == ("Etc/Unknown",) else zones)
