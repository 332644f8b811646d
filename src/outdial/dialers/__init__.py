"""Dialers: what places one attempt on a channel and reports how it ended."""

from outdial.dialers.base import (
    Attempt,
    Dialer,
    DialerError,
    DialerUnavailable,
    InvalidDestination,
    Outcome,
    OutcomeKind,
)
from outdial.dialers.mock import MockDialer
from outdial.dialers.simulated import SimulatedDialer, build_dialer

__all__ = [
    "Attempt",
    "Dialer",
    "DialerError",
    "DialerUnavailable",
    "InvalidDestination",
    "MockDialer",
    "Outcome",
    "OutcomeKind",
    "SimulatedDialer",
    "build_dialer",
]
