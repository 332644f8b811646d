"""Every duration a setting takes can be worked with: a time computed from it (now + a lease,
now - a retention) stays a time, and a wait handed to PostgreSQL stays one it takes. Past its
bound (or infinite), a duration is refused naming its variable, before anything starts."""

import pytest
from pydantic import ValidationError

from outdial.settings import LONGEST_DURATION, LONGEST_SERVER_WAIT, Settings

DURATIONS = sorted(name for name in Settings.model_fields if name.endswith("_seconds"))
# The waits PostgreSQL keeps itself, in ms up to 2^31 - 1 (tests/integration/test_bounded_waits.py
# has the server take the bound).
SERVER_WAITS = {"db_lock_timeout_seconds", "db_statement_timeout_seconds",
                "engine_idle_in_transaction_seconds", "import_lease_seconds"}


def _bound(name: str) -> float:
    return LONGEST_SERVER_WAIT if name in SERVER_WAITS else LONGEST_DURATION


@pytest.mark.parametrize("name", DURATIONS)
def test_a_duration_past_its_bound_or_infinite_is_refused_naming_it(name: str) -> None:
    whole = Settings.model_fields[name].annotation is int
    for value in [int(_bound(name)) + 1] + ([] if whole else [_bound(name) + 0.001, "inf"]):
        with pytest.raises(ValidationError) as refused:
            Settings(**{name: value})
        [error] = refused.value.errors()
        assert error["loc"] == (name,)
        assert error["msg"] == f"Input should be less than or equal to {_bound(name)}"


@pytest.mark.parametrize("name", DURATIONS)
def test_each_duration_is_taken_at_its_bound(name: str) -> None:
    try:
        Settings(**{name: _bound(name)})
    except ValidationError as refused:  # only a rule relating it to another setting may refuse
        assert "less than or equal" not in str(refused)
