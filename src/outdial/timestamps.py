"""The one place that writes and reads the wire's timestamps and page tokens.

Two wire forms (OUTDIAL_TIME_FORMAT): `tutorial`, VoIPbin's original `2022-04-28 01:41:40.503790`
with `9999-01-01 00:00:00.000000` for what has not happened, and `rfc3339`, VoIPbin's current
`2022-04-28T01:41:40.503790Z` with null. The API sets the form of each request from its settings
(use_time_format); both forms are read back as page tokens whatever the setting.
"""

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

TimeFormat = Literal["tutorial", "rfc3339"]
# Written for anything that has not happened yet: tm_update of a new row, tm_delete of a live one.
NEVER = "9999-01-01 00:00:00.000000"
WIRE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Responses, page tokens and exports are rendered deep inside response models and streamed
# bodies; the form they use is the serving app's setting, set per request (api/app.py), so it
# is carried by the request's context rather than threaded through every call.
_time_format: ContextVar[TimeFormat] = ContextVar("outdial_time_format", default="tutorial")


@contextlib.contextmanager
def use_time_format(form: TimeFormat) -> Iterator[None]:
    """Within the block, timestamps are written in `form`."""
    token = _time_format.set(form)
    try:
        yield
    finally:
        _time_format.reset(token)


def current_time_format() -> TimeFormat:
    return _time_format.get()


def format_timestamp(value: dt.datetime | None) -> str | None:
    """A stored time (naive UTC) on the wire; an unset one is the sentinel, or null in rfc3339."""
    if _time_format.get() == "rfc3339":
        return None if value is None else written(value, RFC3339_FORMAT)
    return NEVER if value is None else written(value)


def written(value: dt.datetime, form: str = WIRE_FORMAT) -> str:
    """`value` in `form`, its year in four digits: strftime's %Y writes year 1 as `1`, which
    no reader (ours included) takes back as a timestamp."""
    return value.strftime(form.replace("%Y", f"{value.year:04d}"))


def parse_timestamp(text: str) -> dt.datetime:
    """Read the wire format or RFC 3339; raise ValueError for anything else. Result: naive UTC."""
    try:
        return dt.datetime.strptime(text, WIRE_FORMAT)
    except ValueError:
        pass
    if "T" not in text.upper():
        raise ValueError(f"{text[:100]!r} is not a timestamp")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:  # its own words name Python's types ("timedelta(hours=24)")
        raise ValueError(f"{text[:100]!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    try:
        return parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ValueError(f"{text!r} is outside the years 1-9999 in UTC") from None


# A page token is the tm_create of the page's last row, as the VoIPbin wire has it. When rows of
# the next page share that very microsecond (bulk inserts do), the timestamp alone cannot say
# where the page ended, so the last row's id follows it: "<timestamp>|<uuid>".
TOKEN_ID_SEPARATOR = "|"


def format_page_token(tm_create: dt.datetime, last_id: uuid.UUID | None) -> str:
    stamp = format_timestamp(tm_create)
    assert stamp is not None  # a row always has its tm_create
    return stamp if last_id is None else f"{stamp}{TOKEN_ID_SEPARATOR}{last_id}"


def parse_page_token(token: str) -> tuple[dt.datetime, uuid.UUID | None]:
    stamp, _, last_id = token.partition(TOKEN_ID_SEPARATOR)
    return parse_timestamp(stamp), (uuid.UUID(last_id) if last_id else None)
