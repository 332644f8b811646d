"""Calling windows without a database: zones of numbers, DST, checks of the API's rule."""

import datetime as dt

import pytest

from outdial.strategy.limits import contact_address, limits_problem
from outdial.strategy.windows import (
    DAYS,
    CallingWindow,
    KeyState,
    key_state,
    timezone_problem,
    window_problem,
    zone_key,
    zones_of_number,
)

WINDOW = {"days": list(DAYS), "start": "08:00", "end": "21:00",
          "timezone_default": "America/New_York", "holidays": []}


def tel(number: str) -> dict[str, str]:
    return {"type": "tel", "target": number}


def test_zones_of_numbers() -> None:
    assert zones_of_number("+12125550100") == ("America/New_York",)
    assert zones_of_number("+16055550100") == ("America/Denver", "America/North_Dakota/Center")
    assert "Asia/Vladivostok" in zones_of_number("+74232000000") or len(zones_of_number("+7")) > 1
    assert len(zones_of_number("+61212345678")) >= 1
    assert zones_of_number("+999") == ()


def test_zone_key_takes_the_target_zone_else_every_destination_s() -> None:
    assert zone_key("Asia/Tokyo", [tel("+12125550100")]) == "Asia/Tokyo"
    assert zone_key(None, [tel("+12125550100"), None, {"type": "email", "target": "a@b.c"}]) == (
        "* America/New_York")
    assert zone_key(None, []) == "*"


def test_fall_back_repeats_an_hour_and_the_window_follows_local_time() -> None:
    """1 November 2026, New York: 02:00 EDT falls back to 01:00 EST. A window 01:30-03:00 opens
    at the first 01:30 (05:30 UTC), and the local clock decides: open at 01:45 in both the EDT
    and the EST hour, shut at 01:15 EST (local time before the start once more)."""
    window = CallingWindow.of({**WINDOW, "start": "01:30", "end": "03:00"})
    assert window is not None
    assert window.next_open_in("America/New_York", dt.datetime(2026, 11, 1, 4, 0)) == dt.datetime(
        2026, 11, 1, 5, 30)
    assert window.is_open_in("America/New_York", dt.datetime(2026, 11, 1, 5, 45))  # 01:45 EDT
    assert not window.is_open_in("America/New_York", dt.datetime(2026, 11, 1, 6, 15))  # 01:15 EST
    assert window.is_open_in("America/New_York", dt.datetime(2026, 11, 1, 6, 45))  # 01:45 EST
    assert not window.is_open_in("America/New_York", dt.datetime(2026, 11, 1, 8, 0))  # 03:00


def test_a_window_entirely_inside_the_spring_gap_skips_that_day() -> None:
    window = CallingWindow.of({**WINDOW, "start": "02:10", "end": "02:50"})
    assert window is not None
    opens = window.next_open_in("America/New_York", dt.datetime(2026, 3, 8, 5, 0))
    assert opens == dt.datetime(2026, 3, 9, 6, 10)  # the next day, 02:10 EDT


def test_zones_whose_windows_never_meet_never_open() -> None:
    window = CallingWindow.of({**WINDOW, "start": "09:00", "end": "10:00"})
    assert window is not None
    state = key_state(window, "America/New_York Asia/Tokyo", dt.datetime(2026, 6, 1, 12, 0))
    assert (state.open, state.opens_at) == (False, None)


def test_a_closed_key_is_worked_out_once_until_it_may_change(monkeypatch) -> None:
    """Finding when a key of many zones opens (or that it never does) takes tens of ms: on
    every claim and page it would hold the event loop. It is worked out once, and kept while
    the key is known shut; an open key is always asked again."""
    from outdial.strategy import windows

    worked_out: list[dt.datetime] = []
    closed_state = windows._closed_state

    def counted(window, zones, now):
        worked_out.append(now)
        return closed_state(window, zones, now)

    monkeypatch.setattr(windows, "_closed_state", counted)
    monkeypatch.setattr(windows, "_CLOSED", {})
    window = CallingWindow.of({**WINDOW, "start": "09:00", "end": "17:00"})
    assert window is not None
    never = "America/New_York Asia/Tokyo"  # 09:00-17:00 in both never meet
    night = dt.datetime(2026, 6, 1, 3, 0)  # 23:00 in New York, 12:00 in Tokyo: closed
    states = [key_state(window, never, night + dt.timedelta(hours=h)) for h in range(48)]
    assert len(worked_out) == 1 and all(s == states[0] for s in states)
    assert (states[0].open, states[0].opens_at) == (False, None)

    # New York alone: closed at night until 09:00 there (13:00 UTC), then open, then closed.
    first = key_state(window, "America/New_York", night)
    assert (first.open, first.opens_at) == (False, dt.datetime(2026, 6, 1, 13, 0))
    assert key_state(window, "America/New_York", dt.datetime(2026, 6, 1, 12, 59)) == first
    assert len(worked_out) == 2
    assert key_state(window, "America/New_York", dt.datetime(2026, 6, 1, 13, 0)).open
    evening = key_state(window, "America/New_York", dt.datetime(2026, 6, 1, 21, 0))
    assert (evening.open, evening.opens_at) == (False, dt.datetime(2026, 6, 2, 13, 0))
    assert len(worked_out) == 3
    # Earlier than what is kept (a clock set back): worked out again.
    assert key_state(window, "America/New_York", dt.datetime(2026, 6, 1, 2, 0)) == KeyState(
        False, dt.datetime(2026, 6, 1, 13, 0), "America/New_York")
    assert len(worked_out) == 4


@pytest.mark.parametrize(("change", "field"), [
    ({"days": []}, "calling_window.days"),
    ({"days": ["mon", "mon"]}, "calling_window.days"),
    ({"start": "9:00"}, "calling_window.start"),
    ({"start": "24:00"}, "calling_window.start"),
    ({"end": "07:59"}, "calling_window.end"),
    ({"timezone_default": "EST5EDT "}, "calling_window.timezone_default"),
    ({"holidays": "2026-12-25"}, "calling_window.holidays"),
    ({"holidays": ["2026-02-30"]}, "calling_window.holidays"),
    ({"color": "red"}, "calling_window.color"),
])
def test_window_problems_name_the_field(change: dict, field: str) -> None:
    problem = window_problem({**WINDOW, **change})
    assert problem is not None and problem[0] == field


def test_a_good_window_and_midnight_end_pass() -> None:
    assert window_problem({**WINDOW, "end": "24:00"}) is None
    assert window_problem(None) is None
    assert timezone_problem("Europe/London") is None
    assert timezone_problem(5) == "must be a string"


def test_limits_problems_name_the_field() -> None:
    assert limits_problem([{"max": 3, "window": 86400000}]) is None
    assert limits_problem([{"max": 3, "window": 10}])[0] == "limits.0.window"  # type: ignore[index]
    assert limits_problem([{"max": 3, "window": 86400000, "count": "x"}])[0] == "limits.0.count"  # type: ignore[index]
    assert limits_problem([{"max": True, "window": 86400000}])[0] == "limits.0.max"  # type: ignore[index]


def test_contact_addresses_are_normalised() -> None:
    """Keyed as do-not-call entries are: one normalisation for both."""
    assert contact_address({"type": "email", "target": "Ann@Example.COM"}) == "ann@example.com"
    assert contact_address({"type": "sip", "target": "sips:Bob@Example.com"}) == "sip:bob@example.com"
    assert contact_address(tel("+12125550100")) == "+12125550100"
