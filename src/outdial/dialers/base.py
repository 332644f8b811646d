"""The Dialer interface: an `Attempt` goes in, an `Outcome` comes out.

A dialer is a transport in the httpx sense: it knows one channel (simulated, SIP, SMTP …) and
nothing of campaigns, targets or retries. The engine owns every rule; in particular it enforces
`dial_timeout` with its own clock, so a dialer that hangs costs one `no_answer`, nothing more.

A dialer reports the moment the callee answers by calling `attempt.answered()`; from then on
`dial_timeout` no longer applies and the attempt runs until the dialer returns.

Exceptions a dialer may raise (anything else counts as `failed` too, and is logged):

    DialerError                 the attempt could not be placed           → outcome `failed`
    ├── DialerUnavailable       the channel is down (no trunk, no relay)  → outcome `failed`
    └── InvalidDestination      this channel cannot dial that address     → `invalid_destination`
"""

import abc
import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from outdial.outdials.destinations import dial_uri


class OutcomeKind(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELED = "canceled"
    UNREACHABLE = "unreachable"
    INVALID_DESTINATION = "invalid_destination"


@dataclass(frozen=True)
class Attempt:
    """One attempt to reach one destination of one target: everything a channel needs."""

    campaigncall_id: uuid.UUID
    target_id: uuid.UUID
    destination: dict[str, Any]
    destination_index: int
    try_count: int  # 1-based attempt number on this destination
    source: dict[str, Any] | None
    dial_timeout: int  # ms to wait for an answer
    actions: list[Any]  # the campaign's actions: what to do once answered
    outdial_data: str
    target_data: str
    # Called by the dialer when the callee answers (stops the dial_timeout).
    answered: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)
    # The target's name and detail (message templates use them).
    target_name: str = ""
    target_detail: str = ""


class HangupBy(StrEnum):
    CALLEE = "callee"
    US = "us"

    @property
    def uri(self) -> str:
        """The destination as the URI to dial: tel:+…, sip:… (a `user@host` target is
        sip:user@host), mailto:…."""
        return dial_uri(self.destination)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, with how long it rang and how long it talked (ms).

    The optional fields are what a real channel knows beyond the kind: the final SIP response
    (`sip_code`, `sip_reason`), who ended an answered call, the keys the callee pressed, and an
    SMTP relay's reply and the Message-ID of the email it took. Each is recorded on the
    campaigncall under the same name.
    """

    kind: OutcomeKind
    ring_ms: int = 0
    talk_ms: int = 0
    detail: str = ""
    sip_code: int | None = None
    sip_reason: str | None = None
    hangup_by: HangupBy | None = None
    digits: str | None = None
    smtp_code: int | None = None  # the relay's last reply code
    smtp_reply: str | None = None  # the relay's text, or why it could not be reached
    message_id: str | None = None  # the Message-ID of an email the relay accepted

    @property
    def succeeded(self) -> bool:
        return self.kind is OutcomeKind.ANSWERED


class DialerError(Exception):
    """The attempt could not be placed; it ends as `failed`."""

    outcome = OutcomeKind.FAILED


class DialerUnavailable(DialerError):
    """The channel itself is down; the attempt ends as `failed` and the target is retried."""


class InvalidDestination(DialerError):
    """This channel cannot dial the destination given (wrong address kind, malformed)."""

    outcome = OutcomeKind.INVALID_DESTINATION


class CheckResult(NamedTuple):
    """What trying a channel now found: reachable and accepted (ok), and what happened."""

    ok: bool
    detail: str


class Dialer(abc.ABC):
    """Places attempts. One instance serves every attempt of an engine, concurrently."""

    @abc.abstractmethod
    async def dial(self, attempt: Attempt) -> Outcome:
        """Place the attempt and return when it has ended (cancellation hangs it up)."""

    async def check(self) -> CheckResult:
        """Try the channel now (connect, authenticate) without placing an attempt."""
        return CheckResult(True, "nothing to check: this channel has no peer")

    def follow(self, predecessor: "Dialer", closed: asyncio.Future[None]) -> None:
        """This dialer replaces `predecessor` (its channel was edited) while attempts of the
        latter still run; `closed` is done once they have ended and it has closed. A dialer
        that needs something the predecessor holds meanwhile (a fixed local port) waits."""

    async def aclose(self) -> None:
        """Release the channel's resources."""
        return
