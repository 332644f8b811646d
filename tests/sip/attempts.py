"""The attempt the SIP tests dial: one tel (or sip) destination, as the engine hands it over."""

import time
import uuid

from outdial.dialers.base import Attempt


def make_attempt(
    destination: str = "+15551234567",
    *,
    dial_timeout: int = 5000,
    kind: str = "tel",
    actions: list | None = None,
) -> tuple[Attempt, list[float]]:
    """The attempt, and the list in which it notes (monotonic time) when it was answered."""
    answered: list[float] = []
    attempt = Attempt(
        campaigncall_id=uuid.uuid4(),
        target_id=uuid.uuid4(),
        destination={"type": kind, "target": destination},
        destination_index=0,
        try_count=1,
        source=None,
        dial_timeout=dial_timeout,
        actions=actions or [],
        outdial_data="",
        target_data="",
        answered=lambda: answered.append(time.monotonic()),
    )
    return attempt, answered
