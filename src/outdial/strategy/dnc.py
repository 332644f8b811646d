"""Do-not-call lists: what a destination's normalised value is, and which are listed now.

A value is normalised once, the same way for an entry and for a target's destination:
a phone number in E.164 (the destination rules of outdials/destinations.py read it, so
"(212) 555-0123" with default_region US and "+12125550123" are one value), a SIP URI with its
scheme (`sips:` read as `sip:`, a bare user@host given `sip:`) and an email address, both
lower-cased. The claim looks the normalised destinations of its batch up in the lists that
apply to the campaign: those it names in `dnclist_ids` and those of its customer marked
`applies_to_all`; an entry whose tm_expire has passed no longer counts.
"""

import uuid
from collections.abc import Iterable
from typing import Any

import datetime as dt

from sqlalchemy import ColumnElement, DateTime, String, Uuid, case, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from outdial.errors import InvalidArgument
from outdial.models import DncEntry, Dnclist
from outdial.outdials.destinations import DESTINATION_SLOTS
from outdial.outdials.destinations import dnc_entry as entry_value  # noqa: F401 - re-exported
from outdial.outdials.destinations import dnc_value as normalised  # noqa: F401 - re-exported
from outdial.strategy.reasons import TARGETS, Rule, add_rule
from outdial.strategy.reasons import next_value_sql as _next_value
from outdial.strategy.reasons import value_sql

# The outcome recorded on the campaigncall of a slot passed over because it is on a list.
DNC_OUTCOME = "dnc"


async def referenced_lists(
    session: AsyncSession, customer_id: uuid.UUID, ids: Iterable[uuid.UUID],
    field: str = "dnclist_ids", kept: Iterable[str] = (),
) -> list[str]:
    """A campaign's dnclist_ids, each a live list of the customer (another customer's is as
    missing as a made-up id), in stored form: distinct id texts, in the order given. An id the
    campaign names already (`kept`) stays, its list deleted or not: a client that sends back
    what it read must not be refused for a list deleted since (a deleted list applies no more)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = set(await session.scalars(
        select(Dnclist.id).where(Dnclist.id.in_(wanted), Dnclist.customer_id == customer_id,
                                 Dnclist.tm_delete.is_(None))
    ))
    found |= {uuid.UUID(str(list_id)) for list_id in kept}
    for index, list_id in enumerate(wanted):
        if list_id not in found:
            raise InvalidArgument(f"{field}.{index}", f"dnclist {list_id} does not exist")
    return [str(i) for i in wanted]


async def applicable_lists(
    session: AsyncSession, customer_id: uuid.UUID, named: Iterable[Any]
) -> list[uuid.UUID]:
    """The live lists a campaign of the customer honours: those it names, and those of the
    customer that apply to all."""
    ids = [uuid.UUID(str(i)) for i in named]
    wanted = Dnclist.applies_to_all.is_(True)
    if ids:
        wanted = or_(wanted, Dnclist.id.in_(ids))
    rows = await session.scalars(
        select(Dnclist.id).where(Dnclist.customer_id == customer_id, Dnclist.tm_delete.is_(None),
                                 wanted).order_by(Dnclist.id)
    )
    return list(rows)


# -- listed_until of the targets an import writes (PostgreSQL; migration 0015) ----------------

# The import's transaction says it keeps listed_until itself: the row trigger does nothing.
_KEPT_BY_WRITER = "SELECT set_config('outdial.listed_until_by_writer', 'on', true)"
# The customer's lock of migration 0014 (shared: a writer of targets), then whether any entry
# of the customer could list a target at all.
_LOCK_AND_ANY = text(
    "SELECT pg_advisory_xact_lock_shared(hashtext('outdial listed_until'), "
    "hashtext(CAST(:customer AS uuid)::text)), "
    "EXISTS (SELECT 1 FROM dnc_entries WHERE customer_id = :customer)")
# The listed_until of the import's targets (those of the outdial created at the job's time:
# one range of ix_outdial_targets_live_page; another target created at that very microsecond is
# only computed again) from the entries of their customer: one statement per slot, each the
# later of what the earlier slots gave and its own entries, so that no single statement of a
# million rows against a large list comes near the statement timeout. Only listed rows are
# written.
_SET_LISTED_SLOTS = [text(
    "UPDATE outdial_targets t SET listed_until = greatest(t.listed_until, listed.until) FROM ("
    "SELECT n.id, max(coalesce(e.tm_expire, '9999-12-31 00:00:00')) AS until "
    "FROM outdial_targets n JOIN dnc_entries e ON e.customer_id = n.customer_id "
    f"AND e.value = outdial_dnc_value(n.destination_{slot}) "
    "WHERE n.outdial_id = :outdial AND n.tm_create = :tm_create AND n.tm_delete IS NULL "
    f"AND n.destination_{slot} IS NOT NULL GROUP BY n.id) listed WHERE t.id = listed.id")
    for slot in range(DESTINATION_SLOTS)]


async def keep_listed_until_of_import(connection: AsyncConnection) -> None:
    """In an import's transaction on PostgreSQL, before its rows: the rows' listed_until is
    set by set_listed_until_of_import, a statement per slot, not by the trigger row by row."""
    await connection.execute(text(_KEPT_BY_WRITER))


async def set_listed_until_of_import(
    connection: AsyncConnection, customer_id: uuid.UUID, outdial_id: uuid.UUID,
    tm_create: dt.datetime,
) -> None:
    """The listed_until of the targets an import wrote, just before it commits. The lock is
    the one an entry's writer takes exclusively: a writer that took it first has committed, so
    its entries are read here; one that comes later waits for this commit and then finds these
    targets. Nothing to read when the customer has no entry (no list, or empty lists)."""
    any_entry = (await connection.execute(_LOCK_AND_ANY, {"customer": customer_id})).one()[1]
    if any_entry:
        for statement in _SET_LISTED_SLOTS:
            await connection.execute(statement, {"outdial": outdial_id, "tm_create": tm_create})


# -- the rule, in SQL: the claim and the waiting_reason both read it --------------------------


def _listed(s: Any, value: ColumnElement[str]) -> Any:
    return (
        select(DncEntry.dnclist_id)
        .where(
            DncEntry.dnclist_id.in_(s.param("dnclists", Uuid())),
            DncEntry.value == value,
            or_(DncEntry.tm_expire.is_(None), DncEntry.tm_expire > s.param("now", DateTime())),
        )
        .limit(1)
    )


def listed_columns(s: Any) -> list[ColumnElement[bool]]:
    """For the claim: whether each slot's destination is listed (dnc_listed_N), one index
    probe of uq_dnc_entries_list_value per list and slot of each row claimed; only the slots
    the outplan dials (a slot without tries is never chosen)."""
    if not s.extra.get("dnclists"):
        return []
    return [
        _listed(s, value_sql(TARGETS.c[f"destination_{n}"])).exists().label(f"dnc_listed_{n}")
        for n in range(DESTINATION_SLOTS) if s.limits is None or s.limits[n] > 0
    ]


def listed_slots(row: Any) -> set[int]:
    """The slots of a claimed row (selected with listed_columns) that are listed."""
    mapping = row._mapping
    return {n for n in range(DESTINATION_SLOTS) if mapping.get(f"dnc_listed_{n}")}


def _allows(s: Any) -> Any:
    if not s.extra.get("dnclists"):
        return None
    return ~_listed(s, _next_value(s)).exists()


def _may_hold(s: Any) -> Any:
    """Every target the rule holds: one with a destination that may be listed now (the
    database keeps listed_until, migration 0012), along ix_outdial_targets_listed."""
    if not s.extra.get("dnclists"):
        return None
    return [TARGETS.c.listed_until > s.param("now", DateTime())]


def _which_list(s: Any) -> Any:
    """The id of a list holding the next destination, as text (the same on both databases)."""
    if not s.extra.get("dnclists"):
        return None
    found = _listed(s, _next_value(s)).scalar_subquery()
    return case(
        *((s.param(f"dnclist_{n}", Uuid()), s.param(f"dnclist_text_{n}", String()))
          for n in range(len(s.extra["dnclists"]))),
        value=found, else_=None,
    )


def _params(s: Any) -> dict[str, Any]:
    lists = s.extra.get("dnclists")
    if not lists:
        return {}
    values: dict[str, Any] = {"dnclists": list(lists)}
    for n, list_id in enumerate(lists):
        values[f"dnclist_{n}"] = list_id
        values[f"dnclist_text_{n}"] = str(list_id)
    return values


async def _prepare(session: AsyncSession, s: Any) -> None:
    named = s.campaign.dnclist_ids if s.campaign is not None else []
    s.extra["dnclists"] = await applicable_lists(session, s.customer_id, named or [])


# Asked last: a target is said to wait on a list only when nothing else holds it, which is
# exactly when the claim takes it and passes its listed destination over.
add_rule(Rule(DNC_OUTCOME, _allows, detail=_which_list, prepare=_prepare, passes_over=True,
              params=_params, may_hold=_may_hold))
