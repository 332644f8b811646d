"""A campaign's actions run in order on an answered call, in VoIPbin's action vocabulary."""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from outdial.errors import InvalidArgument
from outdial.media.audio import LANGUAGE, AudioSources
from outdial.media.dtmf import DTMF_KEYS
from outdial.media.errors import AudioError, CallEnded, MediaError
from outdial.media.rtp import RtpSession

# Every action type a campaign may hold. `email_send` is the message sent to email destinations;
# a call skips it.
SUPPORTED_CALL_ACTIONS = frozenset(
    {"answer", "talk", "play", "beep", "sleep", "digits_receive", "hangup", "email_send"}
)

MAX_WAIT_MS = 600_000  # the longest sleep or digits_receive: every wait ends
MAX_TEXT_CHARS = 5000
MAX_STREAM_URLS = 20
DEFAULT_LANGUAGE = "en-US"
DEFAULT_DIGITS_DURATION_MS = 5000


@dataclass(frozen=True)
class Action:
    type: str


@dataclass(frozen=True)
class Talk(Action):
    text: str
    language: str


@dataclass(frozen=True)
class Play(Action):
    stream_urls: tuple[str, ...]


@dataclass(frozen=True)
class Sleep(Action):
    duration_ms: int


@dataclass(frozen=True)
class DigitsReceive(Action):
    duration_ms: int  # the most time the whole collection may take
    keys: str  # pressing one of these ends the collection (the key itself is not kept)
    length: int  # this many digits end it; 0 = no limit


@dataclass(frozen=True)
class ActionsResult:
    digits: str  # what every digits_receive collected, in order
    hangup_by: str  # "us": the actions ended or hung up, hang up now; "callee": the call ended


class ActionFailed(MediaError):
    """One action could not be played (its sound could not be made); the message says why."""

    def __init__(self, index: int, action_type: str, problem: str, digits: str) -> None:
        super().__init__(f"actions[{index}] ({action_type}): {problem}")
        self.index = index
        self.digits = digits  # collected before the failure


def parse_actions(actions: Sequence[Any]) -> list[Action]:
    """Stored actions (`{"type", "option"}`) → typed steps; `InvalidArgument` naming the field.

    The API calls this to refuse a bad campaign with 400; unknown option keys are ignored, as
    VoIPbin clients send more than this service uses."""
    return [_parse(index, raw) for index, raw in enumerate(actions)]


async def run_actions(
    actions: Sequence[Any], session: RtpSession, sources: AudioSources
) -> ActionsResult:
    """Run the actions in order on a started session; every step ends (sound played, bounded
    waits). Keys pressed while a talk or play runs wait for the next digits_receive. Returns when
    the actions end, at `hangup`, or when the session is closed (the callee hung up); raises
    `ActionFailed` when a sound cannot be made, and `InvalidArgument` for malformed actions."""
    steps = parse_actions(actions)
    digits: list[str] = []
    try:
        for index, step in enumerate(steps):
            if step.type == "hangup":
                break
            try:
                collected = await _run(step, session, sources)
            except AudioError as error:
                raise ActionFailed(index, step.type, str(error), "".join(digits)) from None
            if collected is not None:
                digits.append(collected)
    except CallEnded:
        return ActionsResult("".join(digits), "callee")
    return ActionsResult("".join(digits), "us")


async def _run(step: Action, session: RtpSession, sources: AudioSources) -> str | None:
    if isinstance(step, Talk):
        await session.play(await sources.talk(step.text, step.language))
    elif isinstance(step, Play):
        for url in step.stream_urls:
            await session.play(await sources.play(url))
    elif step.type == "beep":
        await session.play(sources.beep())
    elif isinstance(step, Sleep):
        await session.pause(step.duration_ms / 1000)
    elif isinstance(step, DigitsReceive):
        return await _receive_digits(step, session)
    return None  # answer (an outbound call is answered already), email_send (not for calls)


async def _receive_digits(step: DigitsReceive, session: RtpSession) -> str:
    collected = ""
    try:
        async with asyncio.timeout(step.duration_ms / 1000):
            while step.length == 0 or len(collected) < step.length:
                key = await session.next_digit()
                if key in step.keys:
                    break
                collected += key
    except TimeoutError:
        pass
    return collected


# -- parsing ------------------------------------------------------------------------------------


def _parse(index: int, raw: Any) -> Action:
    where = f"actions.{index}"
    if not isinstance(raw, Mapping):
        raise InvalidArgument(where, "must be an object with a type and an option")
    kind = raw.get("type")
    if kind not in SUPPORTED_CALL_ACTIONS:
        raise InvalidArgument(
            f"{where}.type",
            f"{kind!r} is not an action this service runs; use one of "
            + ", ".join(sorted(SUPPORTED_CALL_ACTIONS)),
        )
    option = raw.get("option")
    option = {} if option is None else option
    if not isinstance(option, Mapping):
        raise InvalidArgument(f"{where}.option", "must be an object")
    field = f"{where}.option"
    if kind == "talk":
        text = option.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"{field}.text", "the text to speak is required")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidArgument(f"{field}.text", f"at most {MAX_TEXT_CHARS} characters")
        language = option.get("language") or DEFAULT_LANGUAGE
        if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
            raise InvalidArgument(f"{field}.language", f"{language!r} is not a language tag "
                                  "such as en-US")
        return Talk(kind, text, language)
    if kind == "play":
        urls = option.get("stream_urls")
        if not isinstance(urls, list) or not urls or len(urls) > MAX_STREAM_URLS:
            raise InvalidArgument(f"{field}.stream_urls",
                                  f"a list of 1 to {MAX_STREAM_URLS} http(s) URLs is required")
        for n, url in enumerate(urls):
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidArgument(f"{field}.stream_urls.{n}", f"{url!r} is not an http(s) URL")
        return Play(kind, tuple(urls))
    if kind == "sleep":
        return Sleep(kind, _milliseconds(option, "duration", field, default=None))
    if kind == "digits_receive":
        keys = option.get("key") or ""
        if not isinstance(keys, str) or not set(keys) <= DTMF_KEYS:
            raise InvalidArgument(f"{field}.key", "terminating keys are DTMF keys: 0-9 * # A-D")
        length = option.get("length") or 0
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= 100:
            raise InvalidArgument(f"{field}.length", "a number of digits from 0 (no limit) to 100")
        duration = _milliseconds(option, "duration", field, default=DEFAULT_DIGITS_DURATION_MS)
        return DigitsReceive(kind, duration, keys, length)
    return Action(kind)  # answer, beep, hangup, email_send: options unused here


def _milliseconds(option: Mapping, name: str, field: str, default: int | None) -> int:
    value = option.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WAIT_MS:
        raise InvalidArgument(f"{field}.{name}", f"milliseconds from 0 to {MAX_WAIT_MS} required")
    return value
