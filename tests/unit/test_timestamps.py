"""Wire timestamps and page tokens."""

import datetime as dt
import uuid

import pytest

from outdial.db.paging import PageRequest
from outdial.errors import InvalidArgument
from outdial.timestamps import (
    NEVER,
    format_page_token,
    format_timestamp,
    parse_page_token,
    parse_timestamp,
    use_time_format,
)

STAMP = dt.datetime(2022, 4, 28, 1, 41, 40, 503790)


def test_format_has_six_fraction_digits_and_a_sentinel() -> None:
    assert format_timestamp(STAMP) == "2022-04-28 01:41:40.503790"
    assert format_timestamp(dt.datetime(2022, 4, 28)) == "2022-04-28 00:00:00.000000"
    assert format_timestamp(None) == NEVER == "9999-01-01 00:00:00.000000"


@pytest.mark.parametrize("year", [1, 99, 999])
def test_an_early_year_is_written_in_four_digits_and_read_back(year: int) -> None:
    # strftime's %Y writes year 1 as "1": a tm_expire so stored could not be imported back.
    moment = dt.datetime(year, 1, 2, 3, 4, 5, 6)
    assert format_timestamp(moment) == f"{year:04d}-01-02 03:04:05.000006"
    assert parse_timestamp(format_timestamp(moment)) == moment
    with use_time_format("rfc3339"):
        assert format_timestamp(moment) == f"{year:04d}-01-02T03:04:05.000006Z"


@pytest.mark.parametrize("text", ["2022-04-28 01:41:40.503790", "2022-04-28T01:41:40.503790Z",
                                  "2022-04-28T03:41:40.503790+02:00"])
def test_wire_and_rfc3339_parse_to_the_same_instant(text: str) -> None:
    assert parse_timestamp(text) == STAMP


@pytest.mark.parametrize("text", ["2022-04-28", "2022-04-28T01:41:40", "yesterday", ""])
def test_other_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_an_offset_past_a_day_is_refused_in_our_words() -> None:
    with pytest.raises(ValueError, match=r"^'2027-01-01T00:00:00\+99:00' is not a timestamp$"):
        parse_timestamp("2027-01-01T00:00:00+99:00")


def test_page_token_carries_the_id_only_on_a_tie() -> None:
    row_id = uuid.uuid4()
    assert format_page_token(STAMP, None) == "2022-04-28 01:41:40.503790"
    assert parse_page_token(format_page_token(STAMP, row_id)) == (STAMP, row_id)


@pytest.mark.parametrize("size, expected", [(None, 100), ("", 100), ("1", 1), ("100", 100), ("0", 100),
                                            ("-1", 100), ("101", 100)])
def test_page_size_clamp(size: str | None, expected: int) -> None:
    assert PageRequest.parse(size, None).size == expected


def test_page_size_must_be_an_integer() -> None:
    with pytest.raises(InvalidArgument) as caught:
        PageRequest.parse("2.5", None)
    assert caught.value.reason == "INVALID_REQUEST_PARAMETER"


def test_rfc3339_form_writes_z_and_null_within_its_block_only() -> None:
    with use_time_format("rfc3339"):
        assert format_timestamp(STAMP) == "2022-04-28T01:41:40.503790Z"
        assert format_timestamp(None) is None
        assert parse_page_token(format_page_token(STAMP, None)) == (STAMP, None)
    assert format_timestamp(None) == NEVER


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_years_1_to_9999_in_utc_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="outside the years 1-9999"):
        parse_timestamp(text)
