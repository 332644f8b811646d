"""What a destination may be: an E.164 phone number, a SIP URI or an email address."""

import datetime as dt
import functools
import ipaddress
import json
import re
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneMetadata, ValidationResult
from phonenumbers import phonenumberutil as _pnu

from outdial.errors import InvalidArgument
from outdial.outdials.casefold import fold
from outdial.timestamps import parse_timestamp, written
from outdial.validation import (
    Refused,
    decode_json,
    key_text,
    one_line_problem,
    text_problem,
    value_text,
)

DESTINATION_TYPES = ("tel", "sip", "email")
# How many destinations a target has (destination_0..4). Defined here, not with the tables, so
# the import's checking workers need not load the ORM.
DESTINATION_SLOTS = 5
ADDRESS_FIELDS = ("type", "target", "target_name", "name", "detail")
DESTINATION_FIELDS = tuple(f"destination_{n}" for n in range(DESTINATION_SLOTS))

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NOT_POSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: "its country code does not exist",
    ValidationResult.TOO_SHORT: "it is too short for its country code",
    ValidationResult.TOO_LONG: "it is too long for its country code",
    ValidationResult.INVALID_LENGTH: "its length is not used by its country code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: (
        "it is a local-only number (dialable only from inside its own area, so not an E.164 "
        "number); add the area code"
    ),
}
_SIP_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@\s;?]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\s\[\]@]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<rest>[;?][^\s]*)?",
    re.IGNORECASE,
)
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


# Parsing "+<digits>" is most of libphonenumber's cost (~15 µs). For that one shape, parse_e164
# takes the same steps as phonenumbers.parse (country code by the same rule, national prefix
# stripped by the same helper), and the "possible" verdict — a function of the country code and
# the length of the national significant number alone — is memoised per (country code, length).
# tests/unit/test_e164_fast_path.py checks both against phonenumbers.parse on many numbers.


@functools.cache
def _metadata(country_code: int) -> Any:
    region = phonenumbers.region_code_for_country_code(country_code)
    return PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)


def parse_e164(number: str) -> phonenumbers.PhoneNumber | int:
    """`number` ('+' then digits) as phonenumbers.parse(number, None) reads it, or the
    ValidationResult code saying why parse would refuse it (INVALID_COUNTRY_CODE or TOO_SHORT)."""
    digits = number[1:]
    if len(digits) <= _pnu._MIN_LENGTH_FOR_NSN:
        return ValidationResult.TOO_SHORT
    country_code, national = _pnu._extract_country_code(digits)
    if country_code == 0:
        return ValidationResult.INVALID_COUNTRY_CODE
    if len(national) < _pnu._MIN_LENGTH_FOR_NSN:
        return ValidationResult.TOO_SHORT
    metadata = _metadata(country_code)
    _, stripped, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _pnu._test_number_length(stripped, metadata) not in (
        ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    ):
        national = stripped
    parsed = phonenumbers.PhoneNumber(country_code=country_code)
    _pnu._set_italian_leading_zeros_for_phone_number(national, parsed)
    parsed.national_number = int(national)
    return parsed


@functools.cache
def _possible_by_length(country_code: int, national_length: int) -> int:
    """is_possible_number_with_reason reads only the country code and the national length."""
    sample = phonenumbers.PhoneNumber(country_code=country_code, national_number=int("1" * national_length))
    return phonenumbers.is_possible_number_with_reason(sample)


@functools.cache
def _country_of(first_digits: str) -> tuple[int, int, re.Pattern[str] | None]:
    """(country code, its number of digits, national prefix pattern or None) of E.164 digits
    starting with `first_digits` (3 digits: _extract_country_code reads no further)."""
    country_code, rest = _pnu._extract_country_code(first_digits)
    if country_code == 0:
        return 0, 0, None
    prefix = _metadata(country_code).national_prefix_for_parsing
    return country_code, len(first_digits) - len(rest), re.compile(prefix) if prefix else None


def possible_e164(number: str) -> int:
    """The "possible" verdict (a ValidationResult) on `number`, '+' then digits, as
    is_possible_number_with_reason(phonenumbers.parse(number)) gives it.

    Without a national prefix to strip, parse keeps the digits after the country code as they
    are, so the verdict is that of (country code, their count), memoised; a number that may
    start with a national prefix takes the full path (parse_e164)."""
    digits = number[1:]
    if len(digits) <= _pnu._MIN_LENGTH_FOR_NSN:
        return ValidationResult.TOO_SHORT
    country_code, code_digits, national_prefix = _country_of(digits[:3])
    if country_code == 0:
        return ValidationResult.INVALID_COUNTRY_CODE
    national = digits[code_digits:]
    if len(national) < _pnu._MIN_LENGTH_FOR_NSN:
        return ValidationResult.TOO_SHORT
    if national_prefix is None or not national_prefix.match(national):
        return _possible_by_length(country_code, len(national))
    parsed = parse_e164(number)
    assert not isinstance(parsed, int)  # the checks above are those of parse_e164
    return _possible_by_length(country_code, len(phonenumbers.national_significant_number(parsed)))


def tel_problem(number: str, *, require_valid: bool = False) -> str | None:
    """Why `number` is not an acceptable E.164 phone number, or None when it is."""
    why = _tel_why(number, require_valid)
    return None if why is None else f"{number!r} {why}"


def _tel_why(number: str, require_valid: bool) -> str | None:
    if not E164.fullmatch(number):
        return "is not a valid E.164 phone number ('+' then 2 to 15 digits)"
    why = possible_e164(number)
    if why != ValidationResult.IS_POSSIBLE:
        return f"is not a valid E.164 phone number: {_NOT_POSSIBLE.get(why, 'impossible length')}"
    if require_valid and not phonenumbers.is_valid_number(parse_e164(number)):
        return "is not a phone number in service in any numbering plan"
    return None


def sip_uri(target: str) -> str:
    """A SIP target as a URI: `user@host`, as VoIPbin's documents write it, is `sip:user@host`."""
    return target if target[:4].lower() == "sip:" or target[:5].lower() == "sips:" else f"sip:{target}"


def dial_uri(address: dict[str, Any]) -> str:
    """The URI a channel dials for a stored address: tel:+…, sip:… (or sips:…), mailto:…."""
    target = address["target"]
    kind = address["type"]
    if kind == "sip":
        return sip_uri(target)
    return f"{'mailto' if kind == 'email' else kind}:{target}"


def sip_problem(target: str) -> str | None:
    """Why `target` is not a SIP URI (`sip:`/`sips:`) nor a `user@host`, or None."""
    uri = sip_uri(target)
    match = _SIP_URI.fullmatch(uri)
    if match is None or (uri != target and match["user"] is None):
        return f"{target!r} is not a SIP URI (sip:user@host[:port], sips:…, or user@host)"
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


def infer_type(value: str) -> str | None:
    """The destination type a bare value names: '+…' tel, 'sip:'/'sips:' sip, '…@…' email."""
    if value.startswith("+"):
        return "tel"
    if value[:4].lower() == "sip:" or value[:5].lower() == "sips:":
        return "sip"
    if "@" in value:
        return "email"
    return None


# How people write phone numbers: digits with spaces, dots, dashes, slashes and parentheses.
_WRITTEN_NUMBER = re.compile(r"\+?[0-9(][0-9()\-./ ]*")


# Reading a national number (no '+') costs phonenumbers.parse + format_number ~18 µs, most of
# it in regular expressions. For a written number (_WRITTEN_NUMBER: ASCII digits and
# "()-./ "), parse takes these steps, and national_e164 takes the same ones cheaply:
# 1. It cuts the number out of the text, checks it looks like a number and strips an
#    extension. Each of those regular expressions treats every digit alike, so the outcome is
#    one per shape (the text with each digit written as 0), memoised.
# 2. Then it reads only the digits D: an international prefix (IDD) or the region's own country
#    code at the front may make them an international number, and a national prefix may be
#    stripped. When none of those can start D, parse keeps D as the national number, and
#    format_number gives "+" + country code + D (leading zeros kept). Anything else takes the
#    full path, so does every number of a region whose national prefix pattern matches the
#    empty string (AR).
# tests/unit/test_e164_fast_path.py checks normalise_tel against phonenumbers on many numbers.
_TO_SHAPE = str.maketrans("0123456789", "0000000000")
_PUNCTUATION = str.maketrans("", "", "()-./ ")


@functools.lru_cache(maxsize=4096)  # bounded: a hostile file could write many shapes
def _plain_shape(shape: str) -> bool:
    """Whether parse reads a written number of this shape as its digits alone: not too long
    to parse, a viable number once cut out of the text, no extension."""
    if len(shape) > _pnu._MAX_INPUT_STRING_LENGTH:
        return False
    try:
        cut = _pnu._build_national_number_for_parsing(shape)
    except phonenumbers.NumberParseException:
        return False
    return _pnu._is_viable_phone_number(cut) and not _pnu._maybe_strip_extension(cut)[0]


@functools.lru_cache(maxsize=256)  # the region comes from the request
def _region_rules(region: str) -> tuple[str, re.Pattern[str], re.Pattern[str] | None] | None:
    """(country code, IDD pattern, national prefix pattern or None) of a region parse accepts
    as a default region, or None for one the fast path must leave to parse."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None:
        return None
    pattern = metadata.national_prefix_for_parsing
    prefix = re.compile(pattern) if pattern else None
    # A region without an IDD gets one that never matches, as in parse.
    idd = re.compile(metadata.international_prefix or "NonMatch")
    return str(metadata.country_code), idd, prefix


def national_e164(number: str, region: str | None) -> str | None:
    """format_number(parse(number, region), E164) for a written national number (no '+'),
    when the digits alone decide it; None when the full parse must decide."""
    if number[:1] == "+" or not region or not _WRITTEN_NUMBER.fullmatch(number):
        return None
    rules = _region_rules(region)
    if rules is None or not _plain_shape(number.translate(_TO_SHAPE)):
        return None
    country_code, idd, national_prefix = rules
    digits = number.translate(_PUNCTUATION)
    if not _pnu._MIN_LENGTH_FOR_NSN <= len(digits) <= _pnu._MAX_LENGTH_FOR_NSN:
        return None
    if idd.match(digits) or digits.startswith(country_code):
        return None
    if national_prefix is not None and national_prefix.match(digits):
        return None
    return f"+{country_code}{digits}"


def normalise_tel(number: str, default_region: str | None) -> str:
    """`number` in E.164; a national number is read as one of `default_region`. A string that
    cannot be read as a number is returned as it is, for tel_problem to say what is wrong."""
    if E164.fullmatch(number) or not _WRITTEN_NUMBER.fullmatch(number):
        return number
    if not number.startswith("+") and default_region is None:
        return number
    fast = national_e164(number, default_region)
    if fast is not None:
        return fast
    try:
        parsed = phonenumbers.parse(number, None if number.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_destination(
    slot: int, value: Any, *, from_import: bool = False, default_region: str | None = None,
    require_valid: bool = False,
) -> dict[str, str] | None:
    """Check one destination_N value and return it in stored form (every key present)."""
    return validate_address(f"destination_{slot}", value, from_import=from_import,
                            default_region=default_region, require_valid=require_valid)


def validate_address(
    field: str, value: Any, *, from_import: bool = False, default_region: str | None = None,
    require_valid: bool = False,
) -> dict[str, str] | None:
    """Check an address (a target's destination, an outplan's source) named `field` in errors,
    and return it in stored form (every key present), or None for null.

    The API passes an address object holding an E.164 number. An import (`from_import`) may
    also pass a bare string whose type is inferred, and numbers written with spaces or dashes,
    or national ones read as numbers of `default_region`; all are stored in E.164."""
    if value is None:
        return None
    if from_import and isinstance(value, str):
        value = _bare_address(field, value)
        if value is None:
            return None
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an address object or null")
    for key in value:
        if key not in ADDRESS_FIELDS:
            raise InvalidArgument(f"{field}.{key_text(key)}",
                                  f"is not an address field (one of: {', '.join(ADDRESS_FIELDS)})")
    address: dict[str, str] = {}
    for key in ADDRESS_FIELDS:
        item = value.get(key, "")
        if not isinstance(item, str):
            raise InvalidArgument(f"{field}.{key}", "must be a string")
        if problem := text_problem(key, item):
            raise InvalidArgument(f"{field}.{key}", problem)
        if key == "target_name" and (problem := one_line_problem(item)):
            raise InvalidArgument(f"{field}.{key}", problem)  # an email's display name
        address[key] = item
    kind, target = address["type"], address["target"]
    if kind not in DESTINATION_TYPES:
        raise InvalidArgument(
            f"{field}.type", f"{kind!r} is not a destination type (one of: {', '.join(DESTINATION_TYPES)})"
        )
    if not target:
        raise InvalidArgument(f"{field}.target", "must not be empty")
    if kind == "tel":
        written = target
        if from_import:
            target = address["target"] = normalise_tel(target, default_region)
        problem = tel_problem(target, require_valid=require_valid)
        if problem and from_import and not written.startswith("+"):
            if default_region is None:
                problem += "; a national number needs default_region"
            elif target != written:
                # Say what the national number was read as: the user never wrote that '+…'.
                problem = (f"{written!r} is not a phone number of {default_region}: read as "
                           f"{target}, which {_tel_why(target, require_valid)}")
    else:
        problem = {"sip": sip_problem, "email": email_problem}[kind](target)
    if problem:
        raise InvalidArgument(f"{field}.target", problem)
    return address


UNKNOWN_DESTINATION = ("is not a destination (a target has destination_0 to destination_4, "
                       "named so in lower case)")


def unknown_destination_keys(keys: Any) -> list[str]:
    """Keys of a target that look like a destination but are none of destination_0..4
    (destination_5, destination, Destination_1, " destination_1"): refused, not dropped, so
    that no address is silently lost. (A CSV header is read trimmed and in lower case first.)"""
    return [key for key in keys
            if isinstance(key, str) and key.strip().lower().startswith("destination")
            and key not in DESTINATION_FIELDS]


def _bare_address(field: str, value: str) -> dict[str, str] | None:
    """An import cell: empty, an address object in JSON, or a bare target of inferred type."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("{"):
        try:
            address = decode_json(value)
        except Refused as refused:
            raise InvalidArgument(field, str(refused)) from None
        except ValueError:
            raise InvalidArgument(field, "starts with '{' but is not a JSON address object") from None
        if not isinstance(address, dict):
            raise InvalidArgument(field, "must be an address object or null")
        return address
    kind = infer_type(value)
    if kind is None:
        if _WRITTEN_NUMBER.fullmatch(value):
            kind = "tel"
        else:
            raise InvalidArgument(
                field, f"{value!r} is not a phone number ('+…', or national digits with "
                       "default_region), SIP URI ('sip:…') or email address"
            )
    return {"type": kind, "target": value}


def bare_target(address: dict[str, str]) -> str | None:
    """The address as the bare value an import reads back to it, when there is one."""
    if any(address.get(key) for key in ("target_name", "name", "detail")):
        return None
    target = address["target"]
    if infer_type(target) != address["type"] or target != target.strip() or target.startswith("{"):
        return None
    return target


# -- the forms the export may write a stored address in (outdials.export) ---------------------
#
# An address is stored as json.dumps writes it (the API through the JSON column type, imports
# themselves). Whether the export may copy that text, instead of checking it row by row, is
# worked out once, when the address is written, into two bits per slot of the target's
# address_forms (slot N in bits 2N and 2N + 1):
# - FORM_UNKNOWN: written by anything else; the export checks the text.
# - FORM_JSON: the text is json.dumps of what it reads back (the NDJSON value); the export
#   works out the CSV cell.
# - FORM_CANONICAL: that, and the CSV cell is the compact form, which is the text with '", "'
#   then '": "' closed up to '","' and '":"'.
# - FORM_BARE: that, and the CSV cell is the bare target, the text's 8th '"'-separated piece.
FORM_UNKNOWN, FORM_CANONICAL, FORM_JSON, FORM_BARE = 0, 1, 2, 3
# The stored form of a bare E.164 address, which most imported cells are (imports.checking).
_TEL_HEAD = '{"type": "tel", "target": "'
_TEL_TAIL = '", "target_name": "", "name": "", "detail": ""}'
_TEL_NUMBER = slice(len(_TEL_HEAD), -len(_TEL_TAIL))


def export_form(address: dict[str, Any], stored: str) -> int:
    """The form of `address` stored as the text `stored`: exactly the equalities the export's
    SQL relies on, checked here rather than there."""
    if (not all(type(k) is str and type(v) is str for k, v in address.items())
            or json.dumps(address) != stored):
        return FORM_UNKNOWN
    bare = bare_target(address) if "target" in address and "type" in address else None
    if bare is not None:
        return FORM_BARE if stored.split('"')[7:8] == [bare] else FORM_JSON
    compact = stored.replace('", "', '","').replace('": "', '":"')
    return FORM_CANONICAL if json.dumps(address, separators=(",", ":")) == compact else FORM_JSON


def stored_form(stored: str) -> int:
    """export_form of an address known by its stored text only."""
    if stored.startswith(_TEL_HEAD) and stored.endswith(_TEL_TAIL):
        number = stored[_TEL_NUMBER]
        if number[:1] == "+" and number[1:].isdigit() and number.isascii():
            return FORM_BARE  # without parsing it: a bare E.164 number
    try:
        address = json.loads(stored)
    except ValueError:
        return FORM_UNKNOWN
    return export_form(address, stored) if isinstance(address, dict) else FORM_UNKNOWN


def address_forms(destinations: Any) -> int:
    """A target's address_forms from its five destinations (address dicts, or stored texts as
    imports hold them, or None). An import works it out for each row: kept cheap."""
    forms = shift = 0
    for destination in destinations:
        if destination is not None:
            form = (stored_form(destination) if destination.__class__ is str
                    else export_form(destination, json.dumps(destination)))
            forms |= form << shift
        shift += 2
    return forms


# -- do-not-call values (strategy/dnc.py; the import's checking workers use them too) ---------


def dnc_value(address: dict[str, Any]) -> str:
    """The value a stored address is listed under on a do-not-call list: a tel target as it is
    stored (E.164), a SIP URI with its scheme (`sips:` read as `sip:`, a bare user@host given
    `sip:`) and an email address, both case-folded (outdials.casefold: the mapping the
    database applies too). strategy.reasons.value_sql is the same in SQL."""
    kind, target = address["type"], address["target"]
    if kind == "tel":
        return str(target)
    if kind == "sip":
        uri = fold(sip_uri(target))
        return "sip:" + uri[5:] if uri.startswith("sips:") else uri
    return fold(str(target))


def dnc_entry(value: Any, default_region: str | None = None,
              field: str = "value", kind: Any = None) -> tuple[str, str]:
    """(type, normalised value) of a do-not-call entry as written: a bare value ('+1 212 555
    0123', a national number with default_region, 'sip:…', '…@…') or an address object, read
    by the rules of an imported destination, so an entry is refused for what a destination
    would be. `kind` (the entry's `type`, as an export writes it beside the value) says what a
    bare value is, where its form would not: `+15559876543@example.com` is an email address."""
    if isinstance(value, str) and not value.strip():
        raise InvalidArgument(field, "must not be empty")
    if kind is not None and not (isinstance(kind, str) and not kind.strip()):
        if not isinstance(kind, str) or kind.strip() not in DESTINATION_TYPES:
            raise InvalidArgument("type", f"{value_text(kind)} is not a destination type (one of: "
                                          f"{', '.join(DESTINATION_TYPES)}), or leave it empty")
        if isinstance(value, str):
            try:
                return dnc_entry({"type": kind.strip(), "target": value}, default_region, field)
            except InvalidArgument as error:
                if error.field == f"{field}.target":  # named as they wrote it: a string
                    raise InvalidArgument(field, error.problem) from None
                raise
        if isinstance(value, dict) and value.get("type") != kind.strip():
            raise InvalidArgument("type", f"{value_text(kind)} is not the value's type "
                                          f"{value_text(value.get('type'))}")
    if not isinstance(value, (str, dict)):
        # A number written without quotes (NDJSON, JSON) is no phone number: its leading
        # zeros and its `+` are gone.
        raise InvalidArgument(field, "must be a phone number, SIP URI or email address as a "
                                     "string (\"+12125550123\"), or an address object")
    try:
        address = validate_address(field, value, from_import=True, default_region=default_region)
    except InvalidArgument as error:
        if isinstance(value, str) and error.field == f"{field}.target":
            # The writer gave a string, not an object with a `target`: named as they wrote it.
            raise InvalidArgument(field, error.problem) from None
        raise
    if address is None:
        raise InvalidArgument(field, "must be a phone number, SIP URI or email address")
    return address["type"], dnc_value(address)


def entry_expiry(value: Any, now: dt.datetime, field: str = "tm_expire") -> dt.datetime | None:
    """A do-not-call entry's tm_expire as written, by the API and in an import (empty or null:
    never), in naive UTC. A time that has passed is refused: the entry would list nothing, and
    the person who asked not to be called would be dialed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidArgument(field, "must be a timestamp string, or empty for never")
    try:
        moment = parse_timestamp(value.strip())
    except ValueError as error:
        raise InvalidArgument(field, f"{error} (write `YYYY-MM-DD HH:MM:SS.ffffff` UTC or "
                                     "RFC 3339, or leave it empty for never)") from None
    if moment <= now:
        raise InvalidArgument(field, f"{written(moment)} UTC has passed: the entry would list "
                                     "nothing (leave it empty for never)")
    return moment
