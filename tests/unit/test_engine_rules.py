"""Slot choice and results (engine.md §2, rules 2 and 4)."""

from outdial.dialers import OutcomeKind
from outdial.engine import choose_destination
from outdial.engine.rules import call_result

X = {"type": "tel", "target": "+15550000001"}


def test_lowest_slot_with_a_destination_and_tries_left_is_chosen() -> None:
    assert choose_destination([X, X, None, None, None], [0, 0, 0, 0, 0], [2, 1, 0, 0, 0]) == 0


def test_every_try_of_slot_0_comes_before_slot_1() -> None:
    assert choose_destination([X, X, None, None, None], [1, 0, 0, 0, 0], [2, 1, 0, 0, 0]) == 0
    assert choose_destination([X, X, None, None, None], [2, 0, 0, 0, 0], [2, 1, 0, 0, 0]) == 1


def test_absent_destination_is_skipped_even_with_tries_allowed() -> None:
    assert choose_destination([None, None, X, None, None], [0] * 5, [5, 5, 5, 0, 0]) == 2


def test_slot_the_plan_gives_no_tries_is_never_chosen() -> None:
    assert choose_destination([X, X, None, None, None], [0] * 5, [0, 0, 0, 0, 0]) is None


def test_exhausted_target_has_no_slot() -> None:
    assert choose_destination([X, X, X, X, X], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]) is None


def test_only_an_answer_is_a_success() -> None:
    assert call_result(OutcomeKind.ANSWERED) == "success"
    assert {call_result(k) for k in OutcomeKind if k is not OutcomeKind.ANSWERED} == {"fail"}
