"""The E.164 fast path gives exactly what phonenumbers.parse gives."""

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import ValidationResult

from outdial.outdials.destinations import (
    _possible_by_length,
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
