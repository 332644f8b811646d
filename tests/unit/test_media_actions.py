"""Campaign actions: the supported types, and a malformed option named down to its field."""

import pytest

from outdial.errors import InvalidArgument
from outdial.media import SUPPORTED_CALL_ACTIONS, parse_actions
from outdial.media.actions import DigitsReceive, Play, Sleep, Talk


def test_the_supported_types() -> None:
    assert SUPPORTED_CALL_ACTIONS == {
        "answer", "talk", "play", "beep", "sleep", "digits_receive", "hangup", "email_send"}


def test_a_full_campaign_parses_with_defaults() -> None:
    steps = parse_actions([
        {"type": "answer"},
        {"type": "talk", "option": {"text": "Hello", "gender": "female"}},
        {"type": "talk", "option": {"text": "Hallo", "language": "de-DE"}},
        {"type": "play", "option": {"stream_urls": ["https://example.com/a.mp3"]}},
        {"type": "beep", "option": None},
        {"type": "sleep", "option": {"duration": 1500}},
        {"type": "digits_receive", "option": {"duration": 5000, "key": "#", "length": 4}},
        {"type": "digits_receive", "option": {}},
        {"type": "email_send", "option": {"subject": "s", "content": "c"}},
        {"type": "hangup"},
    ])
    assert [s.type for s in steps] == [
        "answer", "talk", "talk", "play", "beep", "sleep", "digits_receive", "digits_receive",
        "email_send", "hangup"]
    assert steps[1] == Talk("talk", "Hello", "en-US")
    assert steps[2] == Talk("talk", "Hallo", "de-DE")
    assert steps[3] == Play("play", ("https://example.com/a.mp3",))
    assert steps[5] == Sleep("sleep", 1500)
    assert steps[6] == DigitsReceive("digits_receive", 5000, "#", 4)
    assert steps[7] == DigitsReceive("digits_receive", 5000, "", 0)


@pytest.mark.parametrize(
    ("action", "field", "problem"),
    [
        ({"type": "transfer"}, "actions.0.type",
         ("'transfer' is not an action this service runs; use one of answer, beep, "
         "digits_receive, email_send, hangup, play, sleep, talk")),
        ("talk", "actions.0", "must be an object"),
        ({"type": "talk", "option": []}, "actions.0.option", "must be an object"),
        ({"type": "talk", "option": {"text": "  "}}, "actions.0.option.text", "required"),
        ({"type": "talk", "option": {"text": "x" * 5001}}, "actions.0.option.text", "at most"),
        ({"type": "talk", "option": {"text": "hi", "language": "-x"}},
         "actions.0.option.language", "not a language tag"),
        ({"type": "play", "option": {}}, "actions.0.option.stream_urls", "list of 1 to 20"),
        ({"type": "play", "option": {"stream_urls": ["file:///etc/passwd"]}},
         "actions.0.option.stream_urls.0", "not an http(s) URL"),
        ({"type": "sleep", "option": {}}, "actions.0.option.duration", "milliseconds"),
        ({"type": "sleep", "option": {"duration": -1}}, "actions.0.option.duration", "0 to"),
        ({"type": "sleep", "option": {"duration": 600_001}}, "actions.0.option.duration", ""),
        ({"type": "sleep", "option": {"duration": True}}, "actions.0.option.duration", ""),
        ({"type": "sleep", "option": {"duration": "100"}}, "actions.0.option.duration", ""),
        ({"type": "digits_receive", "option": {"key": "x"}}, "actions.0.option.key", "DTMF"),
        ({"type": "digits_receive", "option": {"length": 101}}, "actions.0.option.length", ""),
    ],
)
def test_bad_actions_name_the_field(action, field: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_actions([action])
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_the_index_is_the_actions_position() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_actions([{"type": "beep"}, {"type": "beep"}, {"type": "sleep"}])
    assert raised.value.field == "actions.2.option.duration"
