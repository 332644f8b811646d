"""Request and response shapes of channels, and each channel type's settings (channels.md §1)."""

import math
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from outdial.errors import InvalidArgument
from outdial.models import Channel
from outdial.outdials.destinations import email_problem, sip_problem, tel_problem
from outdial.schemas import CUSTOMER_ID, DETAIL, ID, NAME, TM_CREATE, TM_DELETE, TM_UPDATE, Body
from outdial.timestamps import format_timestamp
from outdial.validation import one_line_problem

CHANNEL_TYPES = ("sip", "smtp", "simulated")
# Which of an outplan's channels dials which destination type.
CHANNEL_OF_DESTINATION = {
    "tel": "sip_channel_id", "sip": "sip_channel_id", "email": "email_channel_id",
}
# A host name or an IP address (IPv6 in brackets or bare): no scheme, no port, no spaces.
_HOST = re.compile(r"[A-Za-z0-9._\-:\[\]]{1,253}")


class _Settings(Body):
    """Settings are typed and closed: a misspelt key is refused rather than ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _check_host(value: str) -> str:
    if not _HOST.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or IP address")
    return value


class SipSettings(_Settings):
    host: str = Field(description="the trunk's host name or IP address")
    port: int = Field(5060, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str = ""
    password: str | None = Field(None, description="write-only; null or left out keeps it")
    realm: str = Field("", description="digest realm to answer; empty: the one challenged")
    # "register" would shadow a method every pydantic model inherits; the wire name stays.
    register_: bool = Field(
        False, alias="register", description="keep a registration (trunks that require one)"
    )
    caller_id: str = Field(
        "", description="E.164 number or SIP URI used as From when the outplan has no source"
    )
    number_format: Literal["e164", "e164_no_plus", "national"] = "e164"
    country_code: str = Field("", description="with number_format national: the code dropped")
    national_prefix: str = Field("0", description="with number_format national: put in front")
    international_prefix: str = Field("00", description="with national: before other countries")
    register_expires: int = Field(3600, ge=60, le=86400, description="registration lifetime (s)")
    public_host: str = Field("", description="address announced in Via, Contact and SDP (NAT)")
    public_port: int | None = Field(None, ge=1, le=65535, description="port announced (NAT)")
    local_port: int = Field(0, ge=0, le=65535, description="local SIP port; 0: any free one")
    tls_verify: bool = Field(True, description="with transport tls: check the certificate")
    max_calls: int = Field(30, ge=1, le=10000, description="most calls in flight on this trunk")
    max_calls_per_second: int = Field(10, ge=1, le=1000, description="most new calls a second")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_host(value)

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        if value:
            problem = tel_problem(value) if value.startswith("+") else sip_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("public_host")
    @classmethod
    def _public_host(cls, value: str) -> str:
        return _check_host(value) if value else value

    @field_validator("country_code", "national_prefix", "international_prefix")
    @classmethod
    def _digits(cls, value: str) -> str:
        if value and not (value.isascii() and value.isdigit() and len(value) <= 4):
            raise ValueError(f"{value!r} must be up to 4 digits")
        return value

    @model_validator(mode="after")
    def _national(self) -> "SipSettings":
        if self.number_format == "national" and not self.country_code:
            raise ValueError("country_code: is required with number_format national")
        return self


class SmtpSettings(_Settings):
    host: str = Field(description="the relay's host name or IP address")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS after connecting, TLS from the start, or none"
    )
    tls_verify: bool = Field(True, description="check the relay's certificate and host name")
    username: str = Field("", description="AUTH user; empty: no AUTH")
    password: str | None = Field(None, description="write-only; null or left out keeps it")
    from_address: str = Field(description="sender, unless the outplan's source is an email")
    from_name: str = ""
    max_messages_per_second: int = Field(50, ge=1, le=10000)
    max_connections: int = Field(4, ge=1, le=50, description="connections kept to the relay")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_host(value)

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if problem := email_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("from_name")
    @classmethod
    def _from_name(cls, value: str) -> str:
        if problem := one_line_problem(value):
            raise ValueError(problem)
        return value


class SimulatedSettings(_Settings):
    """The simulated dialer's outcome weights (normalized) and durations, as OUTDIAL_SIM_*."""

    p_answered: float = Field(0.55, ge=0)
    p_busy: float = Field(0.15, ge=0)
    p_no_answer: float = Field(0.15, ge=0)
    p_rejected: float = Field(0.05, ge=0)
    p_failed: float = Field(0.05, ge=0)
    p_unreachable: float = Field(0.05, ge=0)
    ring_min_ms: int = Field(2000, ge=0, le=600000)
    ring_max_ms: int = Field(15000, ge=0, le=600000)
    talk_min_ms: int = Field(5000, ge=0, le=3600000)
    talk_max_ms: int = Field(60000, ge=0, le=3600000)
    seed: int | None = None

    @field_validator("p_answered", "p_busy", "p_no_answer", "p_rejected", "p_failed",
                     "p_unreachable", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # Strict mode refuses 1 for a float; a weight written as an integer is still a weight.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> "SimulatedSettings":
        weights = (self.p_answered, self.p_busy, self.p_no_answer, self.p_rejected,
                   self.p_failed, self.p_unreachable)
        if sum(weights) <= 0:
            raise ValueError("p_answered: at least one outcome weight must be above 0")
        if not math.isfinite(sum(weights)):  # each is finite, but two near 1e308 are not
            raise ValueError("p_answered: the outcome weights must add up to a finite number")
        if self.ring_max_ms < self.ring_min_ms:
            raise ValueError("ring_max_ms: must not be below ring_min_ms")
        if self.talk_max_ms < self.talk_min_ms:
            raise ValueError("talk_max_ms: must not be below talk_min_ms")
        return self


ChannelSettings = SipSettings | SmtpSettings | SimulatedSettings
SETTINGS_OF: dict[str, type[_Settings]] = {
    "sip": SipSettings, "smtp": SmtpSettings, "simulated": SimulatedSettings,
}
_WORDS = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a JSON object",
}


def parse_settings(kind: str, value: Any) -> ChannelSettings:
    """The settings of a `kind` channel, checked; bad ones → InvalidArgument naming the key."""
    model = SETTINGS_OF[kind]
    if not isinstance(value, dict):
        raise InvalidArgument("settings", "must be a JSON object")
    try:
        return model.model_validate(value)  # type: ignore[return-value]
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            known = ", ".join(f.alias or name for name, f in model.model_fields.items())
            problem = f"is not a setting of a {kind} channel (known: {known})"
        elif first["type"] == "value_error":
            message = str(first["ctx"]["error"])
            # A whole-model check names its field at the front of its message.
            if not location and ": " in message:
                location, _, message = message.partition(": ")
            problem = message
        else:
            problem = _WORDS.get(first["type"], first["msg"])
        raise InvalidArgument(f"settings.{location}" if location else "settings", problem) from None


def settings_out(kind: str, stored: dict[str, Any], has_password: bool) -> dict[str, Any]:
    """Settings as shown: every key, with the password never returned, only whether one is set."""
    shown = dict(stored)
    if "password" in SETTINGS_OF[kind].model_fields:
        shown["password"] = None
        shown["has_password"] = has_password
    return shown


_CHANNEL_EXAMPLE = {
    "name": "main trunk", "detail": "carrier A", "type": "sip",
    "settings": {"host": "sip.example.net", "port": 5060, "transport": "udp",
                 "username": "acme", "password": "trunk-secret", "caller_id": "+15550100"},
}
SETTINGS = ("the type's settings (see the README's channel settings table); the password is "
            "write-only")


class ChannelCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [_CHANNEL_EXAMPLE]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    type: str = Field(description="sip, smtp or simulated")
    settings: dict[str, Any] = Field(default_factory=dict, description=SETTINGS)


class ChannelUpdate(Body):
    """PUT replaces name, detail and settings; a password left out or null keeps the stored one
    ("" removes it). The type cannot change: make another channel."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_CHANNEL_EXAMPLE, "settings": {"host": "sip.example.net", "port": 5080}}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    type: str | None = Field(None, description="if given, must be the channel's type")
    settings: dict[str, Any] = Field(default_factory=dict, description=SETTINGS)


class ChannelOut(BaseModel):
    """A SIP trunk, an SMTP relay or a simulated channel."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    type: str = Field(description="sip, smtp or simulated")
    settings: dict[str, Any] = Field(
        description="the type's settings; password is null, has_password says if one is kept")
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, row: Channel) -> "ChannelOut":
        return cls(
            id=row.id, customer_id=row.customer_id, name=row.name, detail=row.detail,
            type=row.type,
            settings=settings_out(row.type, row.settings, row.password_encrypted is not None),
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
        )


class ChannelCheckOut(BaseModel):
    """What trying the channel now found."""

    ok: bool = Field(description="the peer was reached and accepted us")
    detail: str = Field(description="what happened, in a sentence")
