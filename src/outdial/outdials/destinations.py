"""What a destination may be: an E.164 phone number, a SIP URI or an email address."""

import ipaddress
import re
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import ValidationResult

from outdial.errors import InvalidArgument

DESTINATION_TYPES = ("tel", "sip", "email")
ADDRESS_FIELDS = ("type", "target", "target_name", "name", "detail")

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NOT_POSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: "its country code does not exist",
    ValidationResult.TOO_SHORT: "it is too short for its country code",
    ValidationResult.TOO_LONG: "it is too long for its country code",
    ValidationResult.INVALID_LENGTH: "its length is not used by its country code",
}
_SIP_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@\s;?]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\s\[\]@]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<rest>[;?][^\s]*)?",
    re.IGNORECASE,
)
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def tel_problem(number: str, *, require_valid: bool = False) -> str | None:
    """Why `number` is not an acceptable E.164 phone number, or None when it is."""
    if not _E164.fullmatch(number):
        return f"{number!r} is not a valid E.164 phone number ('+' then 2 to 15 digits)"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return f"{number!r} is not a valid E.164 phone number: its country code does not exist"
    why = phonenumbers.is_possible_number_with_reason(parsed)
    if why not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return f"{number!r} is not a valid E.164 phone number: {_NOT_POSSIBLE.get(why, 'impossible length')}"
    if require_valid and not phonenumbers.is_valid_number(parsed):
        return f"{number!r} is not a phone number in service in any numbering plan"
    return None


def sip_problem(uri: str) -> str | None:
    match = _SIP_URI.fullmatch(uri)
    if match is None:
        return f"{uri!r} is not a SIP URI (sip:user@host[:port] or sips:…)"
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{uri!r} has an invalid IPv6 host"
    elif not _HOSTNAME.fullmatch(host):
        return f"{uri!r} has an invalid host {host!r}"
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        return f"{uri!r} has a port outside 1-65535"
    return None


def email_problem(address: str) -> str | None:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return f"{address!r} is not a valid email address: {error}"
    return None


def validate_destination(slot: int, value: Any) -> dict[str, str] | None:
    """Check one destination_N value and return it in stored form (every key present)."""
    return validate_address(f"destination_{slot}", value)


def validate_address(field: str, value: Any) -> dict[str, str] | None:
    """Check an address (a target's destination, an outplan's source) named `field` in errors,
    and return it in stored form (every key present), or None for null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an address object or null")
    address: dict[str, str] = {}
    for key in ADDRESS_FIELDS:
        item = value.get(key, "")
        if not isinstance(item, str):
            raise InvalidArgument(f"{field}.{key}", "must be a string")
        address[key] = item
    kind, target = address["type"], address["target"]
    if kind not in DESTINATION_TYPES:
        raise InvalidArgument(
            f"{field}.type", f"{kind!r} is not a destination type (one of: {', '.join(DESTINATION_TYPES)})"
        )
    if not target:
        raise InvalidArgument(f"{field}.target", "must not be empty")
    problem = {"tel": tel_problem, "sip": sip_problem, "email": email_problem}[kind](target)
    if problem:
        raise InvalidArgument(f"{field}.target", problem)
    return address
