"""Calling windows in the contact's own time zone (strategy.md §2).

A campaign's `calling_window` says on which days and between which local hours a destination
may be dialed, in the destination's own zone. Every target carries a `zone_key`: the zones its
destinations may be in, written once when the target is stored (`zone_key`): their names, a
whole country's list written as its prefix ("+1"), so that a key is a few bytes. The engine
works out, for the few distinct keys of an outdial, which are open now (`key_states`, the one
place keys are read back into zones) and claims only targets with an open key: one indexed
query, however long the list.

Needs no database and no ORM: the import's checking workers compute zone keys too.
"""

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from outdial.validation import text_problem

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The zone-key token for "no zone known": the campaign's timezone_default stands in.
DEFAULT_ZONE = "*"
# How far ahead the next opening is looked for: a year of holidays and a little more.
HORIZON_DAYS = 400
MAX_HOLIDAYS = 400
_UTC = dt.UTC
_UNKNOWN = "Etc/Unknown"  # libphonenumber's word for "no zone known"


# Files of the zone database that name no zone: `localtime` is whatever the host's own zone is
# (another machine, another meaning), `Factory` a placeholder whose time is "-00".
NOT_ZONES = frozenset({"localtime", "Factory"})


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


@functools.cache
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _longest_prefix(digits: str, longest: int) -> str | None:
    for length in range(min(longest, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return None if zones == (_UNKNOWN,) else digits[:length]
    return None


# The answer for numbers whose first HEAD digits decide it (no longer prefix starts with them):
# all but ~100 of the 10,000 heads. One dict probe instead of up to nine, for every number of
# an import.
HEAD = 4
_LONGER = {prefix[:HEAD] for prefix in TIMEZONE_DATA if len(prefix) > HEAD}
_BY_HEAD = {
    head: _longest_prefix(head, HEAD)
    for head in (f"{n:0{HEAD}d}" for n in range(10**HEAD)) if head not in _LONGER
}
_UNDECIDED = "?"


def _zones_prefix(e164: str) -> str | None:
    """The longest prefix of an E.164 number's digits that libphonenumber's zone table knows
    (a US area code, or the whole country when nothing finer is known); None when none, or
    when the table says "no zone known"."""
    digits = e164[1:] if e164.startswith("+") else e164
    found = _BY_HEAD.get(digits[:HEAD], _UNDECIDED)
    return _longest_prefix(digits, TIMEZONE_LONGEST_PREFIX) if found == _UNDECIDED else found


def zones_of_number(e164: str) -> tuple[str, ...]:
    """The zones libphonenumber's prefix data gives for an E.164 number; () when none. Read
    straight from the prefix table, as time_zones_for_geographical_number does, without
    parsing the number again."""
    prefix = _zones_prefix(e164)
    return () if prefix is None else tuple(TIMEZONE_DATA[prefix])


# A prefix with this many zones or more is a whole country's list (+1 with no known area code
# has all 42 zones of the North American plan; +7, +44, +52, +55, +61 have 4 to 16): a key
# names such a list by its prefix ("+1") instead of zone by zone. Keys stay a few bytes, which
# an index over a million targets stores once per row, and the claim works them out as fast.
MANY_ZONES = 4
COUNTRY_PREFIXES: dict[str, frozenset[str]] = {
    prefix: frozenset(zones) for prefix, zones in sorted(TIMEZONE_DATA.items())
    if len(zones) >= MANY_ZONES
}


def key_of_zones(zones: Iterable[str]) -> str:
    """The zone key of a set of zones (IANA names, DEFAULT_ZONE): sorted and space-separated,
    each country list that is wholly in the set written as its prefix ("+1") instead. The one
    spelling of a set, whichever numbers it came from; CallingWindow.zones reads it back."""
    names = set(zones)
    tokens = {f"+{prefix}" for prefix, country in COUNTRY_PREFIXES.items() if country <= names}
    for token in tokens:
        names -= COUNTRY_PREFIXES[token[1:]]
    return " ".join(sorted(names | tokens)) if names or tokens else DEFAULT_ZONE


def zones_of_key(key: str) -> set[str]:
    """The zones a key stands for (DEFAULT_ZONE included as such). A prefix the zone table no
    longer knows stays as it is: no zone of that name exists, so the window is never open in
    it (fail closed)."""
    zones: set[str] = set()
    for token in key.split(" "):
        if token.startswith("+") and (country := COUNTRY_PREFIXES.get(token[1:])):
            zones.update(country)
        else:
            zones.add(token)
    return zones


@functools.lru_cache(maxsize=4096)
def _key_of_prefixes(prefixes: frozenset[str], default: bool) -> str:
    zones = {zone for prefix in prefixes for zone in TIMEZONE_DATA[prefix]}
    return key_of_zones(zones | {DEFAULT_ZONE} if default else zones)


def zone_key(timezone: str | None, destinations: Iterable[Mapping[str, Any] | None]) -> str:
    """Where a target may be reached, as the key of the zones the calling window must be open
    in (key_of_zones): the target's own `timezone` if it has one; else for each destination the
    zones of its number (tel) or the campaign's default zone (DEFAULT_ZONE) — all of them,
    so that whichever destination is dialed, it is never outside its window (fail closed).
    Worked out once per set of prefixes: an import asks it for every row."""
    if timezone:
        return timezone
    prefixes: set[str] = set()
    default = False
    for destination in destinations:
        if destination is None:
            continue
        prefix = _zones_prefix(destination["target"]) if destination["type"] == "tel" else None
        if prefix is None:
            default = True
        else:
            prefixes.add(prefix)
    if not prefixes:
        return DEFAULT_ZONE
    return _key_of_prefixes(frozenset(prefixes), default)


# -- the window -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallingWindow:
    days: frozenset[int]  # weekday numbers, Monday 0
    start: dt.time
    end: dt.time | None  # None: until midnight ("24:00")
    timezone_default: str
    holidays: frozenset[dt.date]

    @classmethod
    def of(cls, value: Mapping[str, Any] | None) -> "CallingWindow | None":
        """The window of a campaign's stored (already checked) `calling_window`."""
        if not value:
            return None
        return cls(
            days=frozenset(DAYS.index(d) for d in value["days"]),
            start=_clock_time(value["start"]) or dt.time(0),
            end=_clock_time(value["end"]),
            timezone_default=value["timezone_default"],
            holidays=frozenset(dt.date.fromisoformat(d) for d in value.get("holidays", [])),
        )

    def zones(self, key: str) -> list[str]:
        return [self.timezone_default if z == DEFAULT_ZONE else z
                for z in sorted(zones_of_key(key))]

    def is_open_in(self, zone: str, now: dt.datetime) -> bool:
        """Whether the window is open at `now` (naive UTC) in `zone`'s local time."""
        tz = _zone(zone)
        if tz is None:  # a zone this server does not know: never open (fail closed)
            return False
        local = now.replace(tzinfo=_UTC).astimezone(tz)
        wall = local.time().replace(tzinfo=None)
        return (
            local.weekday() in self.days
            and local.date() not in self.holidays
            and self.start <= wall
            and (self.end is None or wall < self.end)
        )

    def next_open_in(self, zone: str, now: dt.datetime) -> dt.datetime | None:
        """The first instant from `now` (naive UTC) when the window is open in `zone`, or None
        if it never opens within HORIZON_DAYS. DST-correct: a start inside a spring-forward gap
        opens at the transition, the first local time past it."""
        if self.is_open_in(zone, now):
            return now
        tz = _zone(zone)
        if tz is None:
            return None
        today = now.replace(tzinfo=_UTC).astimezone(tz).date()
        for offset in range(HORIZON_DAYS):
            day = today + dt.timedelta(days=offset)
            if day.weekday() not in self.days or day in self.holidays:
                continue
            # fold 0 and 1 differ only around a transition: in a gap the opening lies between.
            both = [
                dt.datetime.combine(day, self.start, tz).replace(fold=fold)
                .astimezone(_UTC).replace(tzinfo=None)
                for fold in (0, 1)
            ]
            low, high = max(min(both), now), max(both)
            if high < now:
                continue  # today's opening has passed (and the window has closed again)
            if self.is_open_in(zone, low):
                return low
            if not self.is_open_in(zone, high):
                continue  # the whole window fell into a gap that day
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                if self.is_open_in(zone, middle):
                    high = middle
                else:
                    low = middle
            return high.replace(microsecond=0) if self.is_open_in(
                zone, high.replace(microsecond=0)) else high
        return None


@dataclass(frozen=True)
class KeyState:
    """A zone key's window now: open, or when it opens next (None: not within the horizon) and
    the zone that opens last."""

    open: bool
    opens_at: dt.datetime | None
    zone: str


def key_state(window: CallingWindow, key: str, now: dt.datetime) -> KeyState:
    """Open only if open in every zone of the key; else the first instant open in all."""
    zones = window.zones(key)
    if all(window.is_open_in(z, now) for z in zones):
        return KeyState(True, now, "")
    known = _CLOSED.get((window, key))
    if known is not None and known.since <= now < known.until:
        return known.state
    state, until = _closed_state(window, zones, now)
    if len(_CLOSED) >= _MOST_CLOSED:
        _CLOSED.clear()
    _CLOSED[(window, key)] = _Closed(state, now, until)
    return state


def _closed_state(
    window: CallingWindow, zones: list[str], now: dt.datetime
) -> tuple[KeyState, dt.datetime]:
    """The state of a key closed now, and until when it is known closed (the same state)."""
    moment = now
    for _ in range(4 * len(zones) + 8):  # each round moves past a zone's closed stretch
        nexts = [(window.next_open_in(z, moment), z) for z in zones]
        closed = [z for t, z in nexts if t is None]
        if closed:  # that zone does not open within the horizon from `moment`
            return KeyState(False, None, closed[0]), moment + dt.timedelta(days=1)
        latest, zone = max(nexts, key=lambda pair: (pair[0], pair[1]))
        assert latest is not None
        if all(window.is_open_in(z, latest) for z in zones):
            return KeyState(False, latest, zone), latest
        moment = latest
    # The zones' windows never meet (09:00-17:00 in New York and in Tokyo): no one of them
    # keeps it shut, all of them do. Shut at least until the last moment looked at: up to each
    # round's `latest`, one zone or another was closed.
    return KeyState(False, None, " ".join(zones)), moment


@dataclass(frozen=True)
class _Closed:
    state: KeyState
    since: dt.datetime
    until: dt.datetime


# A closed key's state from the moment it was worked out until it may change (it opens, or the
# last moment it was known shut): finding it takes a zone's windows day by day, for every zone
# of the key, and a key of zones whose windows never meet (a +1 number: 42 zones) takes some
# 0.1 s — on every claim, page and count, on the event loop, for each such key. An open key is
# always asked again (a claim must never dial past the window's end).
_CLOSED: dict[tuple[CallingWindow, str], _Closed] = {}
_MOST_CLOSED = 4096


def key_states(window: CallingWindow, keys: Iterable[str], now: dt.datetime) -> dict[str, KeyState]:
    return {key: key_state(window, key, now) for key in keys}


# -- checking a window as the API and the import take it --------------------------------------


def timezone_problem(name: Any) -> str | None:
    """Why `name` is not a zone this server knows (an IANA name such as America/New_York)."""
    if not isinstance(name, str):
        return "must be a string"
    if problem := text_problem("timezone", name):  # as any text of the API or an import
        return problem
    if name not in known_zones():
        return f"{name[:100]!r} is not an IANA time zone name (e.g. America/New_York)"
    return None


def _clock_time(text: str) -> dt.time | None:
    """'HH:MM' as a time; '24:00' (the end of the day) as None."""
    return None if text == "24:00" else dt.time.fromisoformat(text)


# ASCII digits only: str.isdigit() takes "²" and "٢", which dt.time.fromisoformat does not, and
# fromisoformat takes ISO week dates ("2026-W52-5"), which are no holiday as written here.
CLOCK_TIME = re.compile(r"[0-9]{2}:[0-9]{2}")
CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def window_problem(value: Any) -> tuple[str, str] | None:
    """(field, problem) of a `calling_window` the API refuses, or None. Field names are
    dotted from `calling_window`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "calling_window", "must be an object or null"
    allowed = {"days", "start", "end", "timezone_default", "holidays"}
    for key in value:
        if key not in allowed:
            return f"calling_window.{str(key)[:64]}", (
                "is not a calling window field (days, start, end, timezone_default, holidays)")
    for key in ("days", "start", "end", "timezone_default"):
        if key not in value:
            return f"calling_window.{key}", "is required"
    days = value["days"]
    if not isinstance(days, list) or not days:
        return "calling_window.days", f"must be a non-empty list of {', '.join(DAYS)}"
    for day in days:
        if day not in DAYS:
            return "calling_window.days", f"{str(day)[:20]!r} is not one of {', '.join(DAYS)}"
    if len(set(days)) != len(days):
        return "calling_window.days", "names a day twice"
    times = {}
    for key in ("start", "end"):
        text = value[key]
        if not isinstance(text, str) or not CLOCK_TIME.fullmatch(text) or (
            text == "24:00" and key == "start"
        ):
            return f"calling_window.{key}", "must be a local time HH:MM (00:00-23:59; end may be 24:00)"
        if text != "24:00" and (int(text[:2]) > 23 or int(text[3:]) > 59):
            return f"calling_window.{key}", "must be a local time HH:MM (00:00-23:59; end may be 24:00)"
        times[key] = text
    if times["end"] != "24:00" and times["end"] <= times["start"]:
        return "calling_window.end", "must be after start (a window does not cross midnight)"
    if problem := timezone_problem(value["timezone_default"]):
        return "calling_window.timezone_default", problem
    holidays = value.get("holidays", [])
    if not isinstance(holidays, list):
        return "calling_window.holidays", "must be a list of dates YYYY-MM-DD"
    if len(holidays) > MAX_HOLIDAYS:
        return "calling_window.holidays", f"has more than {MAX_HOLIDAYS} dates"
    for day in holidays:
        try:
            if not isinstance(day, str) or not CALENDAR_DATE.fullmatch(day):
                raise ValueError
            dt.date.fromisoformat(day)
        except ValueError:
            return "calling_window.holidays", f"{str(day)[:20]!r} is not a date YYYY-MM-DD"
    return None


def stored_window(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A checked window as stored: holidays present, sorted and unique."""
    if value is None:
        return None
    return {**value, "holidays": sorted(set(value.get("holidays", [])))}
