"""The dialing rules of engine.md §2 that need no database: slot choice and what an outcome does."""

from collections.abc import Sequence
from typing import Any

from outdial.dialers.base import OutcomeKind
from outdial.models.outdials import DESTINATION_SLOTS

SLOTS = range(DESTINATION_SLOTS)


def choose_destination(
    destinations: Sequence[Any], try_counts: Sequence[int], max_try_counts: Sequence[int],
    first_slot: int = 0,
) -> int | None:
    """The slot to dial next: the lowest N from `first_slot` on with a destination and tries
    left, else None.

    All tries of slot 0 come before slot 1, and so on; slots below `first_slot` were moved on
    from (a retry rule, a do-not-call entry). `None` means the target is exhausted.
    (`repository.tries_left` is the same test written in SQL; a test keeps the two in step.)
    """
    for n in SLOTS:
        if n >= first_slot and destinations[n] is not None and try_counts[n] < max_try_counts[n]:
            return n
    return None


def call_result(outcome: OutcomeKind) -> str:
    """The campaigncall's result for an outcome: only an answer is a success."""
    return "success" if outcome is OutcomeKind.ANSWERED else "fail"
