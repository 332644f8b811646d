"""A dialer driven by a handler function, for tests (in the manner of httpx.MockTransport)."""

import inspect
from collections.abc import Awaitable, Callable

from outdial.dialers.base import Attempt, Dialer, Outcome

Handler = Callable[[Attempt], Outcome | Awaitable[Outcome]]


class MockDialer(Dialer):
    """Every attempt goes to `handler`, which returns (or awaits to) its outcome."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.attempts: list[Attempt] = []

    async def dial(self, attempt: Attempt) -> Outcome:
        self.attempts.append(attempt)
        result = self.handler(attempt)
        if inspect.isawaitable(result):
            return await result
        return result
