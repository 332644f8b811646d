"""Retry rules per outcome (on the outplan): what an ended attempt does to its target.

    {"busy": {"interval": 120000, "max_tries": 3, "next": "retry", "backoff": 2.0}, ...}

- `interval` (ms) replaces the outplan's try_interval after that outcome; with `backoff` the
  k-th such outcome on one destination waits interval × backoff^(k-1).
- `max_tries` caps how many tries on one destination may end in that outcome; the one that
  reaches it moves the target on to its next destination (after the interval), below whatever
  max_try_count_N still allows. null: no cap but max_try_count_N.
- `next`: `retry` (the same destination, while tries are left), `next_destination` (move on
  at once) or `finish` (the target is done).

An outcome without a rule, and every outcome of an outplan without rules, waits try_interval
and retries, as engine.md says. Nothing here touches the database: the engine asks `decide`.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from outdial.errors import InvalidArgument
from outdial.validation import key_text, value_text

# The outcomes a rule may be given for (answered always ends the target).
RULE_OUTCOMES = ("busy", "no_answer", "rejected", "failed", "unreachable",
                 "invalid_destination", "canceled")
NEXT_STEPS = ("retry", "next_destination", "finish")
RULE_FIELDS = ("interval", "max_tries", "next", "backoff")
MAX_INTERVAL_MS = 30 * 24 * 3600 * 1000  # as try_interval
MAX_TRIES = 100  # as max_try_count_N
MAX_BACKOFF = 100.0


def check_retry_rules(value: Any, field: str = "retry_rules") -> dict[str, dict[str, Any]] | None:
    """The rules in stored form (every field present), or None for null / no rule at all;
    raises InvalidArgument naming the field (retry_rules.busy.interval) and what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an object of rules by outcome, or null")
    rules: dict[str, dict[str, Any]] = {}
    for outcome, rule in value.items():
        where = f"{field}.{key_text(outcome)}"
        if outcome not in RULE_OUTCOMES:
            raise InvalidArgument(where, f"is not an outcome a rule can be given for (one of: "
                                         f"{', '.join(RULE_OUTCOMES)})")
        rules[outcome] = _check_rule(where, rule)
    return rules or None


def _check_rule(where: str, rule: Any) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise InvalidArgument(where, "must be an object {interval, max_tries, next, backoff}")
    for key in rule:
        if key not in RULE_FIELDS:
            raise InvalidArgument(f"{where}.{key_text(key)}",
                                  f"is not a rule field (one of: {', '.join(RULE_FIELDS)})")
    interval = rule.get("interval")
    if interval is None:
        raise InvalidArgument(f"{where}.interval", "is required: the ms to wait before the "
                                                   "next try after this outcome (0: at once)")
    if not _is_int(interval) or not 0 <= interval <= MAX_INTERVAL_MS:
        raise InvalidArgument(f"{where}.interval",
                              f"must be an integer of ms in 0-{MAX_INTERVAL_MS}")
    max_tries = rule.get("max_tries")
    if max_tries is not None and (not _is_int(max_tries) or not 1 <= max_tries <= MAX_TRIES):
        raise InvalidArgument(f"{where}.max_tries", f"must be an integer in 1-{MAX_TRIES}, or null")
    step = rule.get("next", "retry")
    if step not in NEXT_STEPS:
        raise InvalidArgument(f"{where}.next",
                              f"{value_text(step)} is not one of: {', '.join(NEXT_STEPS)}")
    backoff = rule.get("backoff")
    if backoff is not None and (isinstance(backoff, bool) or not isinstance(backoff, int | float)
                                or not 1 <= backoff <= MAX_BACKOFF):
        raise InvalidArgument(f"{where}.backoff", f"must be a number in 1-{MAX_BACKOFF:g}, or null")
    return {"interval": interval, "max_tries": max_tries, "next": step,
            "backoff": None if backoff is None else float(backoff)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Decision:
    """What an ended attempt does to its target."""

    next_attempt_at: dt.datetime
    finish: bool = False  # the target is done whatever tries are left
    move_on: bool = False  # the slot dialed is passed over from now on


def decide(
    rules: dict[str, Any] | None, outcome: str, tm_end: dt.datetime, try_interval: int,
    times: int,
) -> Decision:
    """The decision for an attempt that ended in `outcome`, the `times`-th such end on its
    destination (this one included). Without a rule: try_interval, then retry."""
    rule = (rules or {}).get(outcome)
    if rule is None:
        return Decision(tm_end + dt.timedelta(milliseconds=try_interval))
    if rule["next"] == "finish":
        return Decision(tm_end, finish=True)
    if rule["next"] == "next_destination":
        return Decision(tm_end, move_on=True)
    wait = rule["interval"] * (rule["backoff"] or 1.0) ** (times - 1)
    wait = min(wait, MAX_INTERVAL_MS)  # a long backoff stays within what an interval may be
    reached = rule["max_tries"] is not None and times >= rule["max_tries"]
    return Decision(tm_end + dt.timedelta(milliseconds=wait), move_on=reached)


def least_wait(rules: dict[str, Any] | None, outcome: str, try_interval: int) -> int:
    """The shortest wait (ms) the rules allow after `outcome` (backoff only lengthens it)."""
    rule = (rules or {}).get(outcome)
    if rule is None:
        return try_interval
    return rule["interval"] if rule["next"] == "retry" else 0
