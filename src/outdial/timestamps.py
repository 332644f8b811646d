"""The one place that writes and reads the wire's timestamps and page tokens."""

import datetime as dt
import uuid

# Written for anything that has not happened yet: tm_update of a new row, tm_delete of a live one.
NEVER = "9999-01-01 00:00:00.000000"
WIRE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def format_timestamp(value: dt.datetime | None) -> str:
    return NEVER if value is None else value.strftime(WIRE_FORMAT)


def parse_timestamp(text: str) -> dt.datetime:
    """Read the wire format or RFC 3339; raise ValueError for anything else. Result: naive UTC."""
    try:
        return dt.datetime.strptime(text, WIRE_FORMAT)
    except ValueError:
        pass
    if "T" not in text.upper():
        raise ValueError(f"{text!r} is not a timestamp")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return parsed.astimezone(dt.UTC).replace(tzinfo=None)


# A page token is the tm_create of the page's last row, as the VoIPbin wire has it. When rows of
# the next page share that very microsecond (bulk inserts do), the timestamp alone cannot say
# where the page ended, so the last row's id follows it: "<timestamp>|<uuid>".
TOKEN_ID_SEPARATOR = "|"


def format_page_token(tm_create: dt.datetime, last_id: uuid.UUID | None) -> str:
    stamp = format_timestamp(tm_create)
    return stamp if last_id is None else f"{stamp}{TOKEN_ID_SEPARATOR}{last_id}"


def parse_page_token(token: str) -> tuple[dt.datetime, uuid.UUID | None]:
    stamp, _, last_id = token.partition(TOKEN_ID_SEPARATOR)
    return parse_timestamp(stamp), (uuid.UUID(last_id) if last_id else None)
