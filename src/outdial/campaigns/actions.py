"""The action types a campaign may hold, and the checks of their options made when it is saved.

Call actions run in order on an answered call; `email_send` is the message sent to `email`
destinations (and is skipped on a call).
"""

from typing import Any

from outdial.dialers.templates import template_problem
from outdial.errors import InvalidArgument

SUPPORTED_CALL_ACTIONS = (
    "answer", "talk", "play", "beep", "sleep", "digits_receive", "hangup",
)
EMAIL_ACTION = "email_send"
SUPPORTED_ACTIONS = (*SUPPORTED_CALL_ACTIONS, EMAIL_ACTION)


def check_action(index: int, kind: str, option: dict[str, Any]) -> None:
    """Refuse an action this service cannot run, naming the field and the supported types."""
    field = f"actions.{index}"
    if not kind:
        raise InvalidArgument(f"{field}.type", "must not be empty")
    if kind not in SUPPORTED_ACTIONS:
        raise InvalidArgument(
            f"{field}.type",
            f"{kind!r} is not an action this service runs (supported: {', '.join(SUPPORTED_ACTIONS)})",
        )
    if kind == EMAIL_ACTION:
        _check_email_option(field, option)


def _check_email_option(field: str, option: dict[str, Any]) -> None:
    for key in ("subject", "content"):
        value = option.get(key, "")
        if not isinstance(value, str):
            raise InvalidArgument(f"{field}.option.{key}", "must be a string (a template)")
        if problem := template_problem(value):
            raise InvalidArgument(f"{field}.option.{key}", problem)
    if not option.get("content"):
        raise InvalidArgument(f"{field}.option.content", "must not be empty: it is the message")
