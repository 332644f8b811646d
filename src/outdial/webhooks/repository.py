"""All SQL of webhook delivery: fan-out from the outbox, claims with leases, outcomes, pruning.

Fan-out (of a webhook with deliveries waiting: its new events queue up behind them): each
webhook keeps a cursor into its customer's outbox; new events after it become deliveries and
the cursor moves past them in one transaction, under the webhook's row lock,
and (webhook_id, event_id) is unique: exactly one delivery per event and webhook, whichever
process fans out.

Claims: a process claims a run of an endpoint's pending deliveries, oldest event first, under
the webhook's row lock and only while no other process holds a live lease on any of them; so
one process at a time sends to an endpoint, in event order. An endpoint with nothing pending
(the usual case: it keeps up) is claimed as a run of its next new events, read from the outbox
after its cursor, with the lease on the webhook's row: their deliveries are written once, as
they arrive (delivered, or the failed one with the rest of the run pending behind it), and the
cursor moves past them in the same transaction. So a delivery that arrives at once costs one
row written, and the pending index sees only deliveries that wait. A process that dies leaves its
leases to run out, and the run is claimed again (at-least-once: what it had sent of its run
but not yet written down, at most one claim of deliveries, may arrive twice, with the same
webhook-ids).
"""

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.events.outbox import read_events
from outdial.models import Webhook, WebhookDelivery
from outdial.models.events import Event

DELIVERIES = WebhookDelivery.__table__
WEBHOOKS = Webhook.__table__
EVENTS = Event.__table__
TEST_EVENT = "webhook_test"  # the type of a test ping's delivery


@dataclass(frozen=True)
class Item:
    """One claimed delivery, with the event it carries (None: pruned meanwhile)."""

    delivery_id: uuid.UUID | None  # None in a fresh run: its row, and id, are made once settled
    event_id: int
    attempts: int
    tm_queued: dt.datetime
    event: Any | None


@dataclass
class Claim:
    """A run of one endpoint's deliveries, to be sent in this order."""

    webhook_id: uuid.UUID
    customer_id: uuid.UUID
    url: str
    secret_encrypted: str
    items: list[Item]
    failures: int = 0  # the webhook's failed attempts in a row when claimed
    # A run of new events, leased on the webhook: its deliveries are written once arrived
    # (or failed), the cursor moved past them then; `read_up_to`: the last event read for it
    # (events of other types up to there are passed over).
    fresh: bool = False
    read_up_to: int = 0


def _live_enabled() -> Any:
    return and_(Webhook.status == "enabled", Webhook.tm_delete.is_(None))


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DELIVERIES)


async def latest_event_id(session: AsyncSession, customer_id: uuid.UUID) -> int:
    """The customer's newest event: where a new (or enabled again) webhook starts."""
    return await session.scalar(
        select(func.coalesce(func.max(EVENTS.c.id), 0)).where(EVENTS.c.customer_id == customer_id)
    ) or 0


def _newer_events() -> Any:
    """The webhook's customer has events past its cursor."""
    return exists().where(
        EVENTS.c.customer_id == WEBHOOKS.c.customer_id, EVENTS.c.id > WEBHOOKS.c.event_cursor
    )


def _has_pending() -> Any:
    return exists().where(DELIVERIES.c.webhook_id == WEBHOOKS.c.id,
                          DELIVERIES.c.status == "pending")


async def webhooks_behind(session: AsyncSession, *, waiting: bool = False) -> list[uuid.UUID]:
    """Enabled webhooks with events past their cursor; with `waiting`, only those that also
    have deliveries waiting (their new events queue up behind them; a webhook with nothing
    waiting turns its new events into a run when it is claimed, see claim())."""
    query = select(WEBHOOKS.c.id).where(
        WEBHOOKS.c.status == "enabled", WEBHOOKS.c.tm_delete.is_(None), _newer_events())
    if waiting:
        query = query.where(_has_pending())
    return list(await session.scalars(query))


async def fan_out(
    session: AsyncSession, webhook_id: uuid.UUID, now: dt.datetime, most: int
) -> int:
    """Turn up to `most` of the webhook's new events into deliveries; returns how many were
    made. A webhook another process is fanning out is skipped, not waited for."""
    webhook = await _lock_webhook(session, webhook_id)
    if webhook is None or _run_elsewhere(webhook, None, now):
        return 0  # a run of its new events is being sent: they are made once they arrive
    return await _fan_out_locked(session, webhook, now, most)


def _run_elsewhere(webhook: Webhook, owner: str | None, now: dt.datetime) -> bool:
    """Another process (than `owner`) holds a live lease on a run of the webhook's new
    events."""
    return (webhook.owner is not None and webhook.owner != owner
            and webhook.tm_lease_expire is not None and webhook.tm_lease_expire >= now)


# The statements of every run are built once, with their values as parameters: building one
# costs more CPU than the database spends running it.
_LOCK_WEBHOOK = (
    select(Webhook).where(Webhook.id == bindparam("webhook_id"), _live_enabled())
    .with_for_update(skip_locked=True).execution_options(populate_existing=True)
)


async def _lock_webhook(session: AsyncSession, webhook_id: uuid.UUID) -> Webhook | None:
    """The enabled webhook, locked for this transaction; None if another process holds it."""
    return await session.scalar(_LOCK_WEBHOOK, {"webhook_id": webhook_id})


async def _fan_out_locked(
    session: AsyncSession, webhook: Webhook, now: dt.datetime, most: int
) -> int:
    """fan_out() of a webhook the caller has locked."""
    # All types are read, so that the cursor moves past the ones the webhook does not take;
    # only ids and types (the payloads are read when the deliveries are claimed).
    events = await read_events(session, webhook.customer_id, webhook.event_cursor, None, most,
                               columns=(EVENTS.c.id, EVENTS.c.type))
    if not events:
        return 0
    # The deliveries are made by the database from the events read (one statement, whatever
    # their number), each with a new random id.
    new_id = (func.gen_random_uuid() if session.bind.dialect.name == "postgresql"
              else func.lower(func.hex(func.randomblob(16))))  # a Uuid as SQLite stores it
    chosen = select(
        type_coerce(new_id, Uuid()), EVENTS.c.customer_id, literal(webhook.id, Uuid()),
        EVENTS.c.id, EVENTS.c.type, literal("pending"), literal(0), literal(now, DateTime()),
        literal(now, DateTime()), literal(now, DateTime()),
    ).where(EVENTS.c.customer_id == webhook.customer_id, EVENTS.c.id > webhook.event_cursor,
            EVENTS.c.id <= events[-1].id)
    if webhook.event_types:
        chosen = chosen.where(EVENTS.c.type.in_(list(webhook.event_types)))
    result = await session.execute(
        _insert(session).from_select(
            ["id", "customer_id", "webhook_id", "event_id", "event_type", "status", "attempts",
             "next_attempt_at", "tm_queued", "tm_create"],
            chosen,
        ).on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
    )
    webhook.event_cursor = events[-1].id
    return result.rowcount or 0


async def due_webhooks(
    session: AsyncSession, now: dt.datetime, most: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(webhook id, customer id) of enabled webhooks whose first pending delivery (the one the
    others wait behind) is due and not held by a live lease, or with nothing pending, new
    events and no live lease on a run of them. The first is found along
    ix_webhook_deliveries_pending, so a long log of delivered ones is never scanned. The
    customers take turns in the list (each one's first, then each one's second …, each turn in
    random order): one with many endpoints due does not fill it."""
    head = (
        select(DELIVERIES.c.id)
        .where(DELIVERIES.c.webhook_id == WEBHOOKS.c.id, DELIVERIES.c.status == "pending")
        .order_by(DELIVERIES.c.event_id)
        .limit(1)
        .scalar_subquery()
        .correlate(WEBHOOKS)
    )
    first = DELIVERIES.alias("first")
    due = exists().where(
        first.c.id == head, first.c.next_attempt_at <= now,
        or_(first.c.tm_lease_expire.is_(None), first.c.tm_lease_expire < now),
    )
    fresh = and_(~_has_pending(), _newer_events(),  # claim() makes their run
                 or_(WEBHOOKS.c.tm_lease_expire.is_(None), WEBHOOKS.c.tm_lease_expire < now))
    turn = func.row_number().over(partition_by=WEBHOOKS.c.customer_id,
                                  order_by=WEBHOOKS.c.id).label("turn")
    found = (
        select(WEBHOOKS.c.id, WEBHOOKS.c.customer_id, turn)
        .where(WEBHOOKS.c.status == "enabled", WEBHOOKS.c.tm_delete.is_(None),
               or_(due, fresh))
        .subquery()
    )
    # Within a turn at random: with more customers than slots, none is always last.
    query = (select(found.c.id, found.c.customer_id)
             .order_by(found.c.turn, func.random()).limit(most))
    return [(row.id, row.customer_id) for row in await session.execute(query)]


async def claim(
    session: AsyncSession, webhook_id: uuid.UUID, *, owner: str, now: dt.datetime,
    lease_seconds: float, most: int,
) -> Claim | None:
    """Lease the endpoint's next deliveries, in event order, if its first one is due and no
    other process holds any of them. With nothing waiting, the run is its next new events,
    leased on the webhook's row: no delivery is written for them until they have arrived
    (one write each, instead of an insert, a lease and an outcome)."""
    webhook = await _lock_webhook(session, webhook_id)
    if webhook is None:
        return None
    if _run_elsewhere(webhook, owner, now):
        return None
    # This process's lease on its last run of new events (if any) ends with that run; a
    # fresh run below takes it again.
    webhook.owner, webhook.tm_lease_expire = None, None
    lease_expire = now + dt.timedelta(seconds=lease_seconds)
    rows = await _pending_run(session, webhook_id, now, most)
    if not rows:
        return await _fresh_run(session, webhook, owner, now, lease_expire, most)
    if rows[0].held:
        return None
    run = []
    for row in rows:
        if row.next_attempt_at > now:
            break  # waits for its retry, and everything after it waits for it
        run.append(row)
    if not run:
        return None
    await session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id.in_([row.delivery_id for row in run]))
        .values(owner=owner, tm_lease_expire=lease_expire)
    )
    items = [Item(row.delivery_id, row.delivered_event_id, row.attempts, row.tm_queued,
                  row if row.id is not None else None)
             for row in run]
    return Claim(webhook.id, webhook.customer_id, webhook.url, webhook.secret_encrypted, items,
                 webhook.failures)


async def _fresh_run(
    session: AsyncSession, webhook: Webhook, owner: str, now: dt.datetime,
    lease_expire: dt.datetime, most: int,
) -> Claim | None:
    """The webhook's next new events as a run leased on its (locked) row."""
    events = await read_events(
        session, webhook.customer_id, webhook.event_cursor, None, most,
        columns=(EVENTS.c.id, EVENTS.c.type, EVENTS.c.customer_id, EVENTS.c.tm_create,
                 cast(EVENTS.c.data, Text).label("data_json")))
    if not events:
        return None
    wanted = set(webhook.event_types or ())
    chosen = [event for event in events if not wanted or event.type in wanted]
    if not chosen:
        webhook.event_cursor = events[-1].id  # none of its types: passed over
        return None
    webhook.owner, webhook.tm_lease_expire = owner, lease_expire
    items = [Item(None, event.id, 0, now, event) for event in chosen]
    return Claim(webhook.id, webhook.customer_id, webhook.url, webhook.secret_encrypted, items,
                 webhook.failures, fresh=True, read_up_to=events[-1].id)


def _pending_run_query() -> Any:
    held = DELIVERIES.alias("held")
    held_by_any = exists().where(
        held.c.webhook_id == bindparam("webhook_id"), held.c.status == "pending",
        held.c.owner.is_not(None), held.c.tm_lease_expire >= bindparam("now"),
    )
    return (
        select(EVENTS.c.id, EVENTS.c.type, EVENTS.c.customer_id, EVENTS.c.tm_create,
               cast(EVENTS.c.data, Text).label("data_json"),
               DELIVERIES.c.id.label("delivery_id"),
               DELIVERIES.c.event_id.label("delivered_event_id"), DELIVERIES.c.attempts,
               DELIVERIES.c.tm_queued, DELIVERIES.c.next_attempt_at, DELIVERIES.c.owner,
               held_by_any.label("held"))
        .select_from(DELIVERIES.outerjoin(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id))
        .where(DELIVERIES.c.webhook_id == bindparam("webhook_id"),
               DELIVERIES.c.status == "pending")
        .order_by(DELIVERIES.c.event_id).limit(bindparam("most", type_=Integer()))
    )


_PENDING_RUN = _pending_run_query()


async def _pending_run(
    session: AsyncSession, webhook_id: uuid.UUID, now: dt.datetime, most: int
) -> list[Any]:
    """The endpoint's first `most` pending deliveries in event order, each with its event
    (None columns where retention pruned it; the payload as the stored JSON text, sent as it
    is) and whether any of them is held by a live lease."""
    return list((await session.execute(
        _PENDING_RUN, {"webhook_id": webhook_id, "now": now, "most": most})).all())


def _outcome(status_code: int, latency_ms: int, error: str, now: dt.datetime) -> dict[str, Any]:
    return {"response_code": status_code, "latency_ms": latency_ms, "error": error[:1024],
            "tm_update": now, "owner": None, "tm_lease_expire": None}


def _answers(session: AsyncSession, arrived: list[tuple[Item, int, int]]) -> Any:
    """The deliveries that arrived as a table (id, code, ms) bound as one parameter, so that
    the statement that writes them has the same text whatever their number (compiled and
    prepared once): PostgreSQL unnests three arrays, SQLite reads a JSON array."""
    if session.bind.dialect.name == "postgresql":
        return func.unnest(
            literal([item.delivery_id for item, _, _ in arrived], postgresql.ARRAY(Uuid())),
            literal([code for _, code, _ in arrived], postgresql.ARRAY(Integer())),
            literal([ms for _, _, ms in arrived], postgresql.ARRAY(Integer())),
        ).table_valued("id", "code", "ms").render_derived().alias("answer")
    rows = func.json_each(
        literal(json.dumps([[item.delivery_id.hex, code, ms] for item, code, ms in arrived]))
    ).table_valued("value").alias("arrived")
    return select(
        func.json_extract(rows.c.value, "$[0]").label("id"),
        func.json_extract(rows.c.value, "$[1]").label("code"),
        func.json_extract(rows.c.value, "$[2]").label("ms"),
    ).subquery("answer")


async def _move_cursor(
    session: AsyncSession, webhook_id: uuid.UUID, owner: str, up_to: int,
    reset_failures: bool,
) -> bool:
    """A fresh run's events up to `up_to` are settled: the cursor moves past them, if this
    process still holds the webhook's lease (False otherwise: another has the run)."""
    result = await session.execute(
        _MOVE_CURSOR_RESET if reset_failures else _MOVE_CURSOR,
        {"webhook_id": webhook_id, "run_owner": owner, "up_to": up_to})
    return bool(result.rowcount)


def _move_cursor_statement(reset_failures: bool) -> Any:
    up_to = bindparam("up_to", type_=BigInteger())
    values: dict[str, Any] = {"event_cursor": case(
        (WEBHOOKS.c.event_cursor < up_to, up_to), else_=WEBHOOKS.c.event_cursor)}
    if reset_failures:
        values["failures"] = 0
    return (update(WEBHOOKS)
            .where(WEBHOOKS.c.id == bindparam("webhook_id"),
                   WEBHOOKS.c.owner == bindparam("run_owner"))
            .values(values))


_MOVE_CURSOR = _move_cursor_statement(reset_failures=False)
_MOVE_CURSOR_RESET = _move_cursor_statement(reset_failures=True)


def _new_deliveries(
    claim: Claim, rows: list[tuple[Item, dict[str, Any]]], now: dt.datetime
) -> list[dict[str, Any]]:
    return [{"customer_id": claim.customer_id,
             "webhook_id": claim.webhook_id, "event_id": item.event_id,
             "event_type": item.event.type, "attempts": 0, "next_attempt_at": now,
             "tm_queued": item.tm_queued, "tm_create": now, "tm_update": None,
             "status": "pending", "owner": None, "tm_lease_expire": None,
             "response_code": 0, "latency_ms": 0, "error": "", **values}
            for item, values in rows]


# A fresh run's deliveries on PostgreSQL: one statement whatever their number, its rows read
# from arrays (one parameter per column, encoded by the driver in C) and its ids made by the
# database. Building one parameter set per row (executemany) cost more CPU than the sending.
_FRESH_COLUMNS = ("event_id", "event_type", "status", "attempts", "next_attempt_at",
                  "tm_queued", "tm_update", "response_code", "latency_ms", "error")
_FRESH_INSERT = text(
    "INSERT INTO webhook_deliveries (id, customer_id, webhook_id, tm_create, "
    f"{', '.join(_FRESH_COLUMNS)}) "
    "SELECT gen_random_uuid(), CAST(:customer_id AS UUID), CAST(:webhook_id AS UUID), "
    f"CAST(:now AS TIMESTAMP), {', '.join('r.' + c for c in _FRESH_COLUMNS)} "
    "FROM unnest(CAST(:event_id AS BIGINT[]), CAST(:event_type AS VARCHAR[]), "
    "CAST(:status AS VARCHAR[]), CAST(:attempts AS INTEGER[]), "
    "CAST(:next_attempt_at AS TIMESTAMP[]), CAST(:tm_queued AS TIMESTAMP[]), "
    "CAST(:tm_update AS TIMESTAMP[]), CAST(:response_code AS INTEGER[]), "
    "CAST(:latency_ms AS INTEGER[]), CAST(:error AS VARCHAR[])) "
    f"AS r({', '.join(_FRESH_COLUMNS)}) "
    "ON CONFLICT (webhook_id, event_id) DO NOTHING"
)


async def record_fresh(
    session: AsyncSession, claim: Claim, rows: list[tuple[Item, dict[str, Any]]],
    owner: str, now: dt.datetime, up_to: int, *, reset_failures: bool,
) -> bool:
    """Write the deliveries of a fresh run that are settled (each item with the values that
    differ from a pending delivery never tried), and move the cursor to `up_to`; False if
    this process had lost the webhook's lease meanwhile (nothing written)."""
    if not await _move_cursor(session, claim.webhook_id, owner, up_to, reset_failures):
        return False
    if not rows:
        return True
    new = _new_deliveries(claim, rows, now)
    if session.bind.dialect.name == "postgresql":
        await session.execute(_FRESH_INSERT, {
            "customer_id": claim.customer_id, "webhook_id": claim.webhook_id, "now": now,
            **{column: [row[column] for row in new] for column in _FRESH_COLUMNS}})
    else:  # SQLite, in process: no round trip to save
        await session.execute(
            _insert(session).on_conflict_do_nothing(index_elements=["webhook_id", "event_id"]),
            [{"id": uuid.uuid4(), **row} for row in new])
    return True


async def record_delivered(
    session: AsyncSession, arrived: list[tuple[Item, int, int]], webhook_id: uuid.UUID,
    owner: str, now: dt.datetime, *, reset_failures: bool = True,
) -> bool:
    """These deliveries arrived (item, status code, latency in ms each), written in one
    statement; False if this process had lost its lease on any of them meanwhile. The webhook's
    failures in a row go back to 0 (not written when the caller knows they are 0)."""
    if not arrived:
        return True
    answer = _answers(session, arrived)
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id == answer.c.id, DELIVERIES.c.owner == owner,
               DELIVERIES.c.status == "pending")
        .values({
            **_outcome(0, 0, "", now), "status": "delivered",
            "attempts": DELIVERIES.c.attempts + 1,
            "response_code": answer.c.code, "latency_ms": answer.c.ms,
        })
    )
    if result.rowcount != len(arrived):
        return False
    if reset_failures:
        await session.execute(
            update(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.failures != 0)
            .values(failures=0)
        )
    return True


async def record_failed(
    session: AsyncSession, item: Item, webhook_id: uuid.UUID, owner: str, *, status_code: int,
    latency_ms: int, error: str, now: dt.datetime, retry_at: dt.datetime | None,
) -> bool:
    """The attempt failed: retried at `retry_at`, or failed for good (None). The rest of the
    run is let go (it waits behind this one). False if the lease was lost meanwhile."""
    values = _outcome(status_code, latency_ms, error, now)
    if item.attempts == 0:
        values["tm_queued"] = now  # the retry window starts at the first attempt
    if retry_at is None:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = retry_at
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id == item.delivery_id, DELIVERIES.c.owner == owner,
               DELIVERIES.c.status == "pending")
        .values(attempts=item.attempts + 1, **values)
    )
    if not result.rowcount:
        return False
    await release(session, owner, webhook_id)
    return True


async def count_failure(
    session: AsyncSession, webhook_id: uuid.UUID, disable_after: int, now: dt.datetime,
    reason: str,
) -> Webhook | None:
    """One more failed attempt in a row; returns the webhook if this one disabled it."""
    webhook = await session.scalar(
        select(Webhook).where(Webhook.id == webhook_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if webhook is None:
        return None
    webhook.failures += 1
    if webhook.failures < disable_after or webhook.status != "enabled":
        return None
    webhook.status = "disabled"
    webhook.detail = (f"disabled after {webhook.failures} failed attempts in a row; "
                      f"the last: {reason}")[:1024]
    webhook.tm_update = now
    return webhook


async def release(session: AsyncSession, owner: str, webhook_id: uuid.UUID | None = None) -> None:
    """Let go of this process's claims (of one webhook, or all): another may take them."""
    query = update(DELIVERIES).where(DELIVERIES.c.owner == owner, DELIVERIES.c.status == "pending")
    leased = update(WEBHOOKS).where(WEBHOOKS.c.owner == owner)
    if webhook_id is not None:
        query = query.where(DELIVERIES.c.webhook_id == webhook_id)
        leased = leased.where(WEBHOOKS.c.id == webhook_id)
    await session.execute(query.values(owner=None, tm_lease_expire=None))
    await session.execute(leased.values(owner=None, tm_lease_expire=None))


async def renew_leases(
    session: AsyncSession, owner: str, now: dt.datetime, lease_seconds: float
) -> int:
    until = now + dt.timedelta(seconds=lease_seconds)
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.owner == owner, DELIVERIES.c.status == "pending")
        .values(tm_lease_expire=until)
    )
    runs = await session.execute(
        update(WEBHOOKS).where(WEBHOOKS.c.owner == owner).values(tm_lease_expire=until))
    return (result.rowcount or 0) + (runs.rowcount or 0)


async def prune_deliveries(
    session: AsyncSession, before: dt.datetime, now: dt.datetime, most: int
) -> int:
    """Delete up to `most` deliveries made before `before` that no live lease holds. Any number
    of processes may prune at once: rows another holds are skipped, never waited for."""
    doomed = (
        select(DELIVERIES.c.id)
        .where(DELIVERIES.c.tm_create < before,
               or_(DELIVERIES.c.tm_lease_expire.is_(None), DELIVERIES.c.tm_lease_expire < now))
        .limit(most)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(DELIVERIES).where(DELIVERIES.c.id.in_(doomed.scalar_subquery()))
    )
    return result.rowcount or 0

