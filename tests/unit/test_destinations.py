"""Destination rules without a database: E.164 via libphonenumber, SIP URIs, email syntax."""

import json

import pytest

from outdial.errors import InvalidArgument
from outdial.outdials.destinations import (
    address_forms,
    bare_target,
    dial_uri,
    email_problem,
    export_form,
    sip_problem,
    stored_form,
    tel_problem,
    validate_destination,
)


@pytest.mark.parametrize("number", ["+15559876543", "+442071838750", "+4915112345678", "+81312345678"])
def test_possible_e164_numbers_pass(number: str) -> None:
    assert tel_problem(number) is None


@pytest.mark.parametrize("number, why", [
    ("+1555", "too short"),
    ("+1555987654321", "too long"),
    ("5551234567", "'+' then 2 to 15 digits"),
    ("+0123456789", "'+' then 2 to 15 digits"),
    ("+1 555 987 6543", "'+' then 2 to 15 digits"),
    ("+9991234567", "country code does not exist"),
    # 7 digits after +1: libphonenumber's IS_POSSIBLE_LOCAL_ONLY, which no one can dial as is.
    ("+12025550", "local-only number"),
    ("+12025550123", None),
])
def test_impossible_numbers_say_why(number: str, why: str | None) -> None:
    problem = tel_problem(number)
    if why is None:
        assert problem is None
    else:
        assert problem is not None and why in problem


def test_valid_mode_rejects_numbers_not_in_service() -> None:
    assert tel_problem("+15559876543") is None
    assert "not a phone number in service" in (tel_problem("+15559876543", require_valid=True) or "")
    assert tel_problem("+442071838750", require_valid=True) is None


@pytest.mark.parametrize("uri", ["sip:alice@example.com", "sips:alice@example.com:5061", "sip:example.com",
                                 "sip:+15551234567@10.1.2.3;user=phone", "sip:bob@[2001:db8::1]",
                                 "alice@example.com", "bob@10.1.2.3:5060"])
def test_sip_uris_pass(uri: str) -> None:
    assert sip_problem(uri) is None


@pytest.mark.parametrize("uri", ["sip:", "sip:bob@", "http://example.com", "sip:bob@exa mple.com",
                                 "sip:bob@host:99999", "sip:bob@[not-v6]", "example.com", "@example.com",
                                 "alice@", "alice@exa mple.com"])
def test_bad_sip_uris_fail(uri: str) -> None:
    assert sip_problem(uri) is not None


@pytest.mark.parametrize("address, ok", [("a@example.com", True), ("first.last+tag@sub.example.org", True),
                                         ("a@", False), ("@example.com", False), ("a b@example.com", False)])
def test_email_syntax(address: str, ok: bool) -> None:
    assert (email_problem(address) is None) is ok


def test_validate_destination_fills_every_key() -> None:
    stored = validate_destination(3, {"type": "sip", "target": "sip:a@b.c"})
    assert stored == {"type": "sip", "target": "sip:a@b.c", "target_name": "", "name": "", "detail": ""}


def test_validate_destination_refuses_unknown_keys_rather_than_dropping_them() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_destination(3, {"type": "sip", "target": "sip:a@b.c", "extra": 1})
    assert caught.value.field == "destination_3.extra"
    assert "not an address field" in caught.value.problem


@pytest.mark.parametrize("key, value, problem", [
    ("name", "a\x00b", "NUL"), ("target_name", "\ud800", "lone surrogate"),
    ("detail", "x" * 4097, "at most 4096"), ("target", "+1" + "5" * 2000, "at most 1024"),
])
def test_validate_destination_applies_the_value_rules(key: str, value: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_destination(1, {"type": "tel", "target": "+15559876543", key: value})
    assert caught.value.field == f"destination_1.{key}" and problem in caught.value.problem


def test_a_sip_target_written_user_at_host_is_kept_as_given_and_dialed_as_a_sip_uri() -> None:
    stored = validate_destination(0, {"type": "sip", "target": "alice@example.com"})
    assert stored is not None and stored["target"] == "alice@example.com"
    assert dial_uri(stored) == "sip:alice@example.com"
    assert dial_uri({"type": "sip", "target": "sips:bob@example.com"}) == "sips:bob@example.com"
    assert dial_uri({"type": "tel", "target": "+15559876543"}) == "tel:+15559876543"
    assert dial_uri({"type": "email", "target": "a@example.com"}) == "mailto:a@example.com"


def test_validate_destination_names_the_slot() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_destination(4, {"type": "tel", "target": "+1555"})
    assert caught.value.field == "destination_4.target"


# -- the forms the export may copy a stored address in ----------------------------------------

@pytest.mark.parametrize(("address", "form"), [
    ({"type": "tel", "target": "+15559876543", "target_name": "", "name": "", "detail": ""}, 3),
    ({"type": "email", "target": "p1@example.com"}, 3),
    # Not bare: the CSV cell is the compact form, the text closed up.
    ({"type": "sip", "target": "sip:a@example.com", "name": "desk"}, 1),
    ({"type": "tel", "target": "no-type-inferred"}, 1),
    # Bare, but the target is escaped in the text: it cannot be cut out of it.
    ({"type": "email", "target": "Ünïcode@exämple.com"}, 2),
    # Values that closing up '", "' or '": "' would change: the compact form is worked out.
    ({"type": "sip", "target": "sip:a@example.com", "name": ", "}, 2),
    ({"type": "sip", "target": "sip:a@example.com", "name": "q\", "}, 2),
    # Closed up as json.dumps' compact form would be (the opening quote of ": " is taken with
    # the separator before it): known.
    ({"type": "sip", "target": "sip:a@example.com", "name": ": "}, 1),
    # Target first: its 8th '"'-piece is the type, not the target.
    ({"target": "+15559876543", "type": "tel"}, 2),
])
def test_an_address_form_is_what_the_export_relies_on(address: dict, form: int) -> None:
    stored = json.dumps(address)
    assert export_form(address, stored) == form == stored_form(stored)
    assert address_forms([None, address, None, None, address]) == form << 2 | form << 8
    compact = json.dumps(address, separators=(",", ":"))
    if form == 3:
        assert stored.split('"')[7] == bare_target(address)
    elif form == 1:
        assert bare_target(address) is None
        assert stored.replace('", "', '","').replace('": "', '":"') == compact


@pytest.mark.parametrize("stored", [
    '{"type":"tel","target":"+15550001111"}',  # not json.dumps' spacing
    '{"type": "tel", "target": "+15550001111", "name": null}',
    '{"type": "tel", "target": "+15550001111", "tries": 3}',
    '{"type": "tel", "target": "+1", "type": "tel"}',  # a key twice: read back as one
    '["tel", "+15550001111"]',
])
def test_a_text_json_dumps_would_not_write_has_no_known_form(stored: str) -> None:
    assert stored_form(stored) == 0


@pytest.mark.parametrize(("cell", "region", "problem"), [
    # The number as written, and what its region made of it: the user never wrote that '+…'.
    ("12", "US", "'12' is not a phone number of US: read as +112, which is not a valid E.164 "
                 "phone number: it is too short for its country code"),
    ("(212) 555-01", "US", "'(212) 555-01' is not a phone number of US: read as +121255501, "
                           "which is not a valid E.164 phone number"),
    ("2125550123", None, "needs default_region"),
    ("call me", "US", "'call me' is not a phone number ('+…', or national digits with "
                      "default_region)"),
])
def test_an_imported_national_number_is_refused_as_written(
    cell: str, region: str | None, problem: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_destination(0, cell, from_import=True, default_region=region)
    assert problem in refused.value.problem
