"""The action types a campaign may hold, and the checks of their options made when it is saved.

Call actions run in order on an answered call; `email_send` is the message sent to `email`
destinations (and is skipped on a call).
"""

import re
from typing import Any

from outdial.dialers.templates import template_problem
from outdial.errors import InvalidArgument
from outdial.media import SUPPORTED_CALL_ACTIONS, parse_actions

EMAIL_ACTION = "email_send"
# The media layer's set (it runs them, and skips email_send on a call), in a stable order.
SUPPORTED_ACTIONS = tuple(sorted(SUPPORTED_CALL_ACTIONS))


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
        return
    try:  # the media layer checks a call action's options as it will read them
        parse_actions([{"type": kind, "option": option}])
    except InvalidArgument as error:
        where = re.sub(r"^actions\.\d+", field, error.field)
        raise InvalidArgument(where, error.problem) from None


def _check_email_option(field: str, option: dict[str, Any]) -> None:
    for key in ("subject", "content"):
        value = option.get(key, "")
        if not isinstance(value, str):
            raise InvalidArgument(f"{field}.option.{key}", "must be a string (a template)")
        if problem := template_problem(value):
            raise InvalidArgument(f"{field}.option.{key}", problem)
    if not option.get("content"):
        raise InvalidArgument(f"{field}.option.content", "must not be empty: it is the message")
