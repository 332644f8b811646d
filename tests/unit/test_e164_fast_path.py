"""The fast paths for E.164 and national numbers give exactly what phonenumbers gives."""

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import ValidationResult

from outdial.outdials.destinations import (
    _WRITTEN_NUMBER,
    _possible_by_length,
    national_e164,
    normalise_tel,
    parse_e164,
    possible_e164,
    tel_problem,
)

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
e164 = st.builds(
    lambda cc, rest: f"+{cc}{rest}"[:16],
    st.one_of(st.sampled_from(COUNTRY_CODES), st.integers(1, 999)),
    st.text("0123456789", min_size=0, max_size=14),
)


@settings(max_examples=3000, deadline=None)
@given(e164)
def test_fast_path_agrees_with_phonenumbers(number: str) -> None:
    fast = parse_e164(number)
    try:
        slow = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as error:
        expected = (ValidationResult.INVALID_COUNTRY_CODE
                    if error.error_type == error.INVALID_COUNTRY_CODE else ValidationResult.TOO_SHORT)
        assert fast == expected
        return
    assert fast == slow
    length = len(phonenumbers.national_significant_number(slow))
    assert _possible_by_length(slow.country_code, length) == phonenumbers.is_possible_number_with_reason(slow)
    assert phonenumbers.is_valid_number(fast) == phonenumbers.is_valid_number(slow)


# Numbers that start with a national prefix after their country code (+44 0…, +1 1…, +39 0…)
# take the full path; many country codes have such prefixes, so give them often.
with_national_prefix = st.builds(
    lambda cc, prefix, rest: f"+{cc}{prefix}{rest}"[:16],
    st.sampled_from(COUNTRY_CODES), st.sampled_from(["0", "1", "8", "00", "01", "06", "9"]),
    st.text("0123456789", min_size=0, max_size=13),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(e164, with_national_prefix))
def test_memoised_possible_verdict_agrees_with_phonenumbers(number: str) -> None:
    try:
        expected = phonenumbers.is_possible_number_with_reason(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException as error:
        expected = (ValidationResult.INVALID_COUNTRY_CODE
                    if error.error_type == error.INVALID_COUNTRY_CODE else ValidationResult.TOO_SHORT)
    assert possible_e164(number) == expected


def test_numbers_of_unknown_country_codes_are_refused_not_crashing() -> None:
    assert "country code does not exist" in (tel_problem("+999123456") or "")
    assert tel_problem("+15559876543") is None
    assert "too short" in (tel_problem("+1555") or "")


# National numbers as people write them, read with a default region.
REGIONS = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "IT", "AR", "CN", "RU", "MX", "AU", "CA"]
written_national = st.builds(
    lambda opening, prefix, groups, separators, closing: (
        opening + prefix + "".join(g + s for g, s in zip(groups, separators)) + closing
    ),
    st.sampled_from(["", "(", "((", "(0)"]),
    # National and international prefixes and country codes, which parse treats specially.
    st.sampled_from(["", "", "0", "1", "00", "011", "010", "0015", "90", "44", "49", "33", "91",
                     "55", "81", "8", "810", "003768", "0002"]),
    st.lists(st.text("0123456789", min_size=0, max_size=5), min_size=1, max_size=6),
    st.lists(st.sampled_from(["", " ", "-", ".", "/", ") ", " (", "  ", "--", "()"]),
             min_size=6, max_size=6),
    st.sampled_from(["", "", " ", ")", "-", "."]),
)


def libphonenumber_reads(number: str, region: str) -> str:
    """normalise_tel as it was: phonenumbers.parse then format_number, or the text unchanged."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=4000, deadline=None)
@given(written_national.filter(lambda n: bool(_WRITTEN_NUMBER.fullmatch(n))),
       st.sampled_from(REGIONS))
def test_national_fast_path_agrees_with_phonenumbers(number: str, region: str) -> None:
    expected = libphonenumber_reads(number, region)
    fast = national_e164(number, region)
    assert fast is None or fast == expected
    assert normalise_tel(number, region) == expected


@settings(max_examples=1000, deadline=None)
@given(st.text("0123456789()-./ ", min_size=1, max_size=30)
       .filter(lambda n: bool(_WRITTEN_NUMBER.fullmatch(n))),
       st.sampled_from(REGIONS))
def test_any_written_number_agrees_with_phonenumbers(number: str, region: str) -> None:
    assert normalise_tel(number, region) == libphonenumber_reads(number, region)


def test_national_fast_path_reads_common_numbers_and_leaves_the_rest_to_parse() -> None:
    assert national_e164("(212) 555-1234", "US") == "+12125551234"
    assert national_e164("030 1234567", "DE") is None  # national prefix: full path
    assert normalise_tel("030 1234567", "DE") == "+49301234567"
    assert national_e164("1 212 555 1234", "US") is None  # country code in front: full path
    assert normalise_tel("1 212 555 1234", "US") == "+12125551234"
    assert national_e164("011 44 20 7946 0958", "US") is None  # IDD: full path
    assert national_e164("11 1234-5678", "AR") is None  # AR's national prefix may be empty
    assert national_e164("212 555 1234", "XX") is None  # not a region: parse refuses it
    assert normalise_tel("212 555 1234", "XX") == "212 555 1234"
    assert national_e164("12", "US") is None and normalise_tel("1", "US") == "1"
