"""Contact limits per customer (strategy.md §3): at most N attempts (or N answered contacts) to
one normalised destination per rolling window, across every campaign and channel.

Each attempt of a customer with limits is written down in `contacts` under its destination's
normalised value (the one do-not-call lists use: outdials.destinations.dnc_value) as it is
claimed; a target whose next destination has reached a limit waits
(reason `contact_limit`) until the oldest contact counted leaves the window. The check is a
count along ix_contacts_address (customer, address, time) per candidate row, so it stays cheap
however long the history; the history is pruned past the longest window allowed (31 days) as campaigns take turns.
"""

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from outdial.models import Contact
from outdial.outdials.destinations import dnc_value as contact_address

CONTACTS = Contact.__table__
COUNTS = ("attempts", "answered")
MAX_LIMITS = 10
MAX_WINDOW_MS = 31 * 24 * 3600 * 1000
MIN_WINDOW_MS = 60 * 1000
PRUNE_ROWS = 1000  # contacts pruned per turn at most: every turn stays short


@dataclass(frozen=True)
class ContactLimit:
    max: int  # contacts allowed in the window
    window: int  # ms, rolling
    count: str = "attempts"  # or "answered": only answered attempts count

    @classmethod
    def all_of(cls, stored: Iterable[Mapping[str, Any]] | None) -> tuple["ContactLimit", ...]:
        return tuple(cls(int(v["max"]), int(v["window"]), v.get("count", "attempts"))
                     for v in stored or ())


def limits_problem(value: Any) -> tuple[str, str] | None:
    """(field, problem) of a `limits` list the API refuses, or None."""
    if not isinstance(value, list):
        return "limits", "must be a list of {max, window, count}"
    if len(value) > MAX_LIMITS:
        return "limits", f"has more than {MAX_LIMITS} limits"
    for n, item in enumerate(value):
        field = f"limits.{n}"
        if not isinstance(item, dict):
            return field, "must be an object {max, window, count}"
        for key in item:
            if key not in ("max", "window", "count"):
                return f"{field}.{str(key)[:64]}", "is not a limit field (max, window, count)"
        for key, (low, high) in (("max", (1, 1000)), ("window", (MIN_WINDOW_MS, MAX_WINDOW_MS))):
            number = item.get(key)
            if number is None:
                return f"{field}.{key}", "is required"
            if not isinstance(number, int) or isinstance(number, bool):
                return f"{field}.{key}", "must be an integer"
            if not low <= number <= high:
                unit = " ms (1 minute to 31 days)" if key == "window" else ""
                return f"{field}.{key}", f"{number} is outside {low}-{high}{unit}"
        if item.get("count", "attempts") not in COUNTS:
            return f"{field}.count", "must be attempts or answered"
    return None


class shifted(FunctionElement[dt.datetime]):
    """A stored timestamp plus some milliseconds, in each database's own arithmetic."""

    type = DateTime()
    inherit_cache = True


@compiles(shifted, "postgresql")
def _shifted_postgresql(element: shifted, compiler: Any, **kw: Any) -> str:
    moment, ms = list(element.clauses)
    return f"({compiler.process(moment, **kw)} + make_interval(secs => {compiler.process(ms, **kw)} / 1000.0))"


@compiles(shifted, "sqlite")
def _shifted_sqlite(element: shifted, compiler: Any, **kw: Any) -> str:
    # The form timestamps are stored in on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff'), so that the
    # result compares and reads back like a stored one.
    moment, ms = list(element.clauses)
    return (f"(strftime('%Y-%m-%d %H:%M:%f', {compiler.process(moment, **kw)}, "
            f"({compiler.process(ms, **kw)} / 1000.0) || ' seconds') || '000')")


def counted(limit: ContactLimit, customer_id: Any, address: Any, since: Any) -> Any:
    """SQL: a contact the limit counts now (of `address`; None: of any address)."""
    terms = [CONTACTS.c.customer_id == customer_id, CONTACTS.c.tm_create > since]
    if address is not None:
        terms.append(CONTACTS.c.address == address)
    if limit.count == "answered":
        terms.append(CONTACTS.c.answered.is_(true()))
    return and_(*terms)


def since(limit: ContactLimit, now: dt.datetime) -> dt.datetime:
    """The start of the limit's rolling window now: contacts after it count."""
    return now - dt.timedelta(milliseconds=limit.window)


def within_limits(
    limits: Sequence[ContactLimit], customer_id: Any, address: Any, sinces: Sequence[Any]
) -> ColumnElement[bool] | None:
    """SQL: the target's next destination is under every limit (None: no limits). `sinces`:
    each limit's window start (since()), as values or bound parameters."""
    if not limits:
        return None
    return and_(*(
        select(func.count()).select_from(CONTACTS)
        .where(counted(limit, customer_id, address, start)).scalar_subquery() < limit.max
        for limit, start in zip(limits, sinces, strict=True)
    ))


def frees_at(
    limits: Sequence[ContactLimit], customer_id: Any, address: Any, sinces: Sequence[Any]
) -> ColumnElement[Any] | None:
    """SQL: when the destination may be contacted again: once every limit it has reached lets
    it go, each when its max-th newest counted contact leaves the window (so a count above the
    max, after a limit was lowered, waits for the older ones too). NULL when none is reached."""
    if not limits:
        return None
    return latest(*(
        shifted(
            select(CONTACTS.c.tm_create).where(counted(limit, customer_id, address, start))
            .order_by(CONTACTS.c.tm_create.desc()).offset(limit.max - 1).limit(1)
            .scalar_subquery(),
            literal(limit.window),
        )
        for limit, start in zip(limits, sinces, strict=True)
    ))


class latest(FunctionElement[dt.datetime]):
    """The latest of some timestamps, passing over NULLs (NULL if all are). Written as a
    function of its arguments, not as max() over a derived table of them: a derived table's
    subqueries are not correlated with the row they are asked about (they read every target)."""

    type = DateTime()
    inherit_cache = True


@compiles(latest, "postgresql")
def _latest_postgresql(element: latest, compiler: Any, **kw: Any) -> str:
    return f"GREATEST({', '.join(compiler.process(c, **kw) for c in element.clauses)})"


@compiles(latest, "sqlite")
def _latest_sqlite(element: latest, compiler: Any, **kw: Any) -> str:
    # SQLite's max() of several arguments is NULL if one is; '' sorts before any timestamp
    # (stored as text). One argument: max() would be the aggregate.
    moments = [compiler.process(c, **kw) for c in element.clauses]
    if len(moments) == 1:
        return moments[0]
    return f"NULLIF(max({', '.join(f'coalesce({m}, {chr(39) * 2})' for m in moments)}), '')"


class CapBudget:
    """What one claim may still take of each address under the limits. The claim's SQL checked
    each row's next destination against the history alone; two cases it could not see are
    checked here, against the history *and* what this claim took already: an address chosen
    by two rows of the batch, and a slot reached by passing a listed one over. Every other
    address is left as the SQL found it, with nothing more read (attempts count at once; an
    `answered` limit counts only answered contacts, which this claim's are not yet)."""

    def __init__(self, limits: Sequence[ContactLimit], counted: list[dict[str, int]]) -> None:
        self.limits = limits
        # Per limit: the contacts it counts now, of each address this budget checks.
        self.counted = counted

    @classmethod
    async def load(
        cls, session: AsyncSession, customer_id: uuid.UUID, limits: Sequence[ContactLimit],
        chosen: Sequence[tuple[Mapping[str, Any], bool]], now: dt.datetime,
    ) -> "CapBudget":
        """`chosen`: each row's destination to dial, and whether the claim moved the row to it
        past a listed slot (its SQL checked another one)."""
        seen: set[str] = set()
        checked: set[str] = set()
        for destination, moved in chosen:
            address = contact_address(destination)
            if moved or address in seen:
                checked.add(address)
            seen.add(address)
        per_limit: list[dict[str, int]] = []
        for limit in limits:
            counts = dict.fromkeys(checked, 0)
            if checked:
                rows = await session.execute(
                    select(CONTACTS.c.address, func.count())
                    .where(counted(limit, customer_id, None, since(limit, now)),
                           CONTACTS.c.address.in_(sorted(checked)))
                    .group_by(CONTACTS.c.address)
                )
                counts.update({address: int(n) for address, n in rows})
            per_limit.append(counts)
        return cls(limits, per_limit)

    def take(self, destination: Mapping[str, Any]) -> bool:
        """Whether an attempt to `destination` stays under every limit; if so, it is counted."""
        address = contact_address(destination)
        if address not in self.counted[0]:  # one row's own next destination: the SQL said so
            return True
        if any(self.counted[n][address] >= limit.max for n, limit in enumerate(self.limits)):
            return False
        for n, limit in enumerate(self.limits):
            if limit.count == "attempts":
                self.counted[n][address] += 1
        return True


async def record_contacts(
    session: AsyncSession, customer_id: uuid.UUID,
    attempts: Iterable[tuple[uuid.UUID, Mapping[str, Any]]], now: dt.datetime,
) -> None:
    """Write down claimed attempts (campaigncall id, destination) as contacts."""
    rows = [{"id": call_id, "customer_id": customer_id, "address": contact_address(destination),
             "answered": False, "tm_create": now} for call_id, destination in attempts]
    if rows:
        await session.execute(insert(CONTACTS), rows)


async def mark_answered(session: AsyncSession, call_ids: Sequence[uuid.UUID]) -> None:
    """Answered attempts count towards `answered` limits (no row: the customer has none): from
    the moment the call is answered, not only once it has ended, so that no other campaign
    calls the person while they are still talking, and a call whose worker dies mid-call
    still counts."""
    if call_ids:
        await session.execute(
            update(CONTACTS).where(CONTACTS.c.id.in_(call_ids)).values(answered=True)
        )


async def prune(session: AsyncSession, now: dt.datetime) -> None:
    """Forget up to PRUNE_ROWS contacts older than any limit may count (MAX_WINDOW_MS), oldest
    first along ix_contacts_age: the history stays bounded by the longest window allowed.

    Any customer's: the claim of another customer may be pruning the same rows, in a
    transaction held open as long as its claim. Those are skipped, not waited for: one
    customer's slow claim must not stall every other customer's (each would wait for the lock
    timeout and lose its turn)."""
    old = (
        select(CONTACTS.c.id)
        .where(CONTACTS.c.tm_create <= now - dt.timedelta(milliseconds=MAX_WINDOW_MS))
        .order_by(CONTACTS.c.tm_create)
        .limit(PRUNE_ROWS)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(CONTACTS).where(CONTACTS.c.id.in_(old.scalar_subquery())))
