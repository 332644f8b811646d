"""All SQL of the engine: take a campaign's turn (settle + claim), close attempts, leases.

Each attempt is routed to a channel as it is claimed: `tel` and `sip` destinations to the
outplan's SIP channel, `email` to its email channel; an outplan with no channel at all dials
through the server's simulated dialer (channel_id nil, channel_type `simulated`). A channel's
pacing (a trunk's max_calls and max_calls_per_second, a relay's max_messages_per_second) is
counted from the database under the channel's row lock, so it holds across every campaign and
worker, as a campaign's concurrency and dial_rate do under the campaign's.
"""

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    Select,
    Uuid,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.campaigns.service import campaign_changed
from outdial.channels.schemas import CHANNEL_OF_DESTINATION
from outdial.db import index_value
from outdial.dialers.base import Outcome, OutcomeKind
from outdial.engine.rules import SLOTS, call_result, choose_destination
from outdial.events import catalogue
from outdial.events.outbox import NewEvent, emit_many
from outdial.models import (
    Campaign,
    Campaigncall,
    Channel,
    Customer,
    Outdial,
    Outplan,
)
from outdial.models.base import NIL_UUID
from outdial.strategy import dnc, reasons, retry
from outdial.strategy import limits as contact_limits
from outdial.strategy.reasons import DUE, TARGETS, Limits, Situation, tries_left

CALLS = Campaigncall.__table__
IN_FLIGHT = CALLS.c.status != index_value("done")  # ix_campaigncalls_in_flight
# SQLite and PostgreSQL both cap the parameters of one statement; stay well under.
CHUNK = 500
# How long a claim waits for a channel's row lock (another claim on the same trunk) before it
# gives the campaign's turn up for this round.
CHANNEL_LOCK_TIMEOUT_MS = 2000


def limits_of(outplan: Outplan | None) -> Limits:
    """An outplan's max_try_count_0..4; a missing outplan allows nothing."""
    if outplan is None:
        return tuple(0 for _ in SLOTS)
    return tuple(outplan.max_try_count(n) for n in SLOTS)


@dataclass(frozen=True)
class Claimed:
    """One claimed attempt, with everything the dialer and the recorder will need."""

    campaigncall_id: uuid.UUID
    campaign_id: uuid.UUID
    target_id: uuid.UUID
    destination: dict[str, Any]
    destination_index: int
    try_count: int
    source: dict[str, Any] | None
    dial_timeout: int
    actions: list[Any]
    outdial_data: str
    target_data: str
    target_name: str = ""
    target_detail: str = ""
    channel_id: uuid.UUID = NIL_UUID
    channel_type: str = "simulated"  # "" when the outplan has no channel for the destination
    channel_revision: int = 0


@dataclass(frozen=True)
class Closing:
    """An attempt that has ended, to be written down."""

    campaigncall_id: uuid.UUID
    target_id: uuid.UUID
    outcome: OutcomeKind
    tm_end: dt.datetime
    report: Outcome | None = None  # what the channel said (SIP code, SMTP reply …)
    channel_type: str = ""  # as claimed; for the metrics
    destination_index: int = 0  # the slot dialed


@dataclass(frozen=True)
class NextTry:
    """What the outplan says of a target whose attempt has ended, read when it ends: its
    tries, the interval to its next attempt (ms) and its retry rules (strategy/retry.py)."""

    limits: Limits
    try_interval: int
    retry_rules: dict[str, Any] | None


NO_MORE_TRIES = NextTry(limits_of(None), 0, None)  # the outplan is gone


@dataclass
class Route:
    """Where a destination type's attempts go, and how many more the channel takes now
    (None: no limit)."""

    channel_id: uuid.UUID
    channel_type: str
    revision: int = 0
    room: int | None = None

    def take(self) -> bool:
        if self.room is None:
            return True
        if self.room <= 0:
            return False
        self.room -= 1
        return True


SIMULATED = Route(NIL_UUID, "simulated")


async def active_campaign_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Campaigns the engine has work in: running ones, and stopping ones to settle."""
    rows = await session.scalars(
        select(Campaign.id)
        .where(Campaign.status.in_(("run", "stopping")), Campaign.tm_delete.is_(None))
        .order_by(Campaign.tm_create, Campaign.id)
    )
    return list(rows)


async def take_turn(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    worker_id: str,
    now: dt.datetime,
    lease_seconds: float,
    most: int,
) -> list[Claimed]:
    """Settle a campaign's status and claim up to `most` of its dialable targets.

    Everything happens under the campaign's row lock, so the concurrency and dial_rate counts
    read here hold until commit whichever worker reads them. A worker that finds the row locked
    skips the campaign this round instead of queueing behind the claimer (and the server ends
    the session of a claimer that hangs, see runner.engine_database). A campaign whose outdial
    or outplan is gone, or whose outdial now names another campaign, is stopped.
    """
    campaign = await session.scalar(
        select(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.tm_delete.is_(None),
            Campaign.status.in_(("run", "stopping")),
        )
        .with_for_update(skip_locked=True, key_share=True)
    )
    if campaign is None:
        return []
    in_flight = (
        await session.scalar(
            select(func.count())
            .select_from(CALLS)
            .where(CALLS.c.campaign_id == campaign.id, IN_FLIGHT)
        )
        or 0
    )
    if campaign.status == "stopping":
        if in_flight == 0:
            await _set_status(session, campaign, "stop", now)
        return []

    outplan = await session.get(Outplan, campaign.outplan_id)
    outdial = await session.get(Outdial, campaign.outdial_id)
    if outplan is None or outdial is None or not _can_dial(campaign, outplan, outdial):
        # It can never dial again: it stops as if told to, once its attempts in flight end.
        await _set_status(session, campaign, "stopping" if in_flight else "stop", now)
        return []
    limits = limits_of(outplan)
    claimed: list[Claimed] = []
    started = (
        await session.scalar(
            select(func.count())
            .select_from(CALLS)
            .where(
                CALLS.c.campaign_id == campaign.id,
                CALLS.c.tm_create > now - dt.timedelta(seconds=1),
            )
        )
        or 0
    )
    room = min(most, campaign.concurrency - in_flight, campaign.dial_rate - started)
    if room > 0:
        situation = await reasons.situation(
            session, outdial, now, campaign=campaign, outplan=outplan
        )
        if situation.contact_limits:
            # Two campaigns of one customer claim one at a time, so that both never see a
            # destination under its cap and dial it past it. One that finds the customer
            # locked gives its turn up this round, as for the campaign's own lock. FOR NO KEY
            # UPDATE: inserts that merely reference the customer are not held up.
            held = await session.scalar(
                select(Customer.id).where(Customer.id == campaign.customer_id)
                .with_for_update(skip_locked=True, key_share=True)
            )
            if held is None:
                return []
            await contact_limits.prune(session, now)
        if not situation.nothing_open():
            await reasons.plan_for_rows(session)
            routes = await _routes(session, outplan, now)
            if routes is None:  # another claim holds the trunk: this campaign waits a round
                return []
            claimed = await _claim_targets(
                session, campaign, outplan, outdial, situation, room, worker_id, now,
                lease_seconds, routes,
            )

    if (
        not claimed
        and in_flight == 0
        and campaign.end_handle == "stop"
        and not await _has_pending_targets(session, campaign.outdial_id, limits)
    ):
        await _set_status(session, campaign, "stop", now)
    return claimed


def _can_dial(campaign: Campaign, outplan: Outplan, outdial: Outdial) -> bool:
    """A campaign dials only a live outdial that names it (one outdial, one running campaign:
    the API refuses to move that link while the campaign runs) with a live outplan."""
    return (
        outplan.tm_delete is None
        and outdial.tm_delete is None
        and outdial.campaign_id == campaign.id
    )


async def _set_status(
    session: AsyncSession, campaign: Campaign, status: str, now: dt.datetime
) -> None:
    campaign.status = status
    campaign.tm_update = now
    await campaign_changed(session, campaign, now)


async def _routes(
    session: AsyncSession, outplan: Outplan, now: dt.datetime
) -> dict[str, Route] | None:
    """The route of each destination type under `outplan`, each channel locked and its room
    counted; None if a channel's lock could not be had in time."""
    slots = {"sip_channel_id": outplan.sip_channel_id, "email_channel_id": outplan.email_channel_id}
    if all(channel_id == NIL_UUID for channel_id in slots.values()):
        return dict.fromkeys(CHANNEL_OF_DESTINATION, SIMULATED)
    ids = sorted({channel_id for channel_id in slots.values() if channel_id != NIL_UUID})
    channels = await _lock_channels(session, ids)
    if channels is None:
        return None
    by_slot: dict[str, Route] = {}
    routes: dict[uuid.UUID, Route] = {}
    for slot, channel_id in slots.items():
        channel = channels.get(channel_id)
        if channel_id not in routes and channel is not None:
            routes[channel_id] = await _channel_route(session, channel, now)
        # No channel for this slot: its attempts fail, saying so (never a silent simulation).
        by_slot[slot] = routes.get(channel_id) or Route(NIL_UUID, "")
    return {kind: by_slot[slot] for kind, slot in CHANNEL_OF_DESTINATION.items()}


async def _lock_channels(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Channel] | None:
    """Lock the channels' rows in id order (two claims never deadlock), waiting at most
    CHANNEL_LOCK_TIMEOUT_MS on PostgreSQL; None when that ran out. SQLite has one writer."""
    query = (
        select(Channel)
        .where(Channel.id.in_(ids))
        .order_by(Channel.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if session.bind.dialect.name != "postgresql":
        return {c.id: c for c in await session.scalars(query)}
    previous = await session.scalar(text("SELECT current_setting('lock_timeout')"))
    set_timeout = text("SELECT set_config('lock_timeout', :value, true)")
    try:
        async with session.begin_nested():  # a timed-out lock rolls back this savepoint only
            await session.execute(set_timeout, {"value": f"{CHANNEL_LOCK_TIMEOUT_MS}ms"})
            rows = {c.id: c for c in await session.scalars(query)}
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return None
    await session.execute(set_timeout, {"value": previous})
    return rows


async def _channel_route(session: AsyncSession, channel: Channel, now: dt.datetime) -> Route:
    """The channel's route, with its room: a trunk's calls in flight and calls started in the
    last second, a relay's messages started in the last second, counted over every campaign."""
    route = Route(channel.id, channel.type, channel.revision)
    if channel.tm_delete is not None:
        route.room = 0
        return route
    settings = channel.settings
    most_in_flight = settings.get("max_calls") if channel.type == "sip" else None
    most_per_second = settings.get(
        "max_calls_per_second" if channel.type == "sip" else "max_messages_per_second"
    )
    if channel.type == "simulated":
        return route
    room = None
    if isinstance(most_in_flight, int):
        in_flight = await session.scalar(
            select(func.count()).select_from(CALLS).where(CALLS.c.channel_id == channel.id, IN_FLIGHT)
        ) or 0
        room = most_in_flight - in_flight
    if isinstance(most_per_second, int):
        started = await session.scalar(
            select(func.count()).select_from(CALLS).where(
                CALLS.c.channel_id == channel.id,
                CALLS.c.tm_create > now - dt.timedelta(seconds=1),
            )
        ) or 0
        room = most_per_second - started if room is None else min(room, most_per_second - started)
    route.room = room
    return route


async def _has_pending_targets(
    session: AsyncSession, outdial_id: uuid.UUID, limits: Limits
) -> bool:
    """Whether any live target is being dialed or still has tries left (now or after its wait)."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    TARGETS.c.outdial_id == outdial_id,
                    TARGETS.c.tm_delete.is_(None),
                    or_(
                        TARGETS.c.status == "progressing",
                        and_(TARGETS.c.status == "idle", tries_left(limits)),
                    ),
                )
            )
        )
    )


def claim_query(situation: Situation, room: int | None = None) -> Select[Any]:
    """Up to `room` dialable targets of the outdial, earliest due first (a `fresh_first`
    campaign: untried ones first): one query along ix_outdial_targets_due
    (ix_outdial_targets_fresh), however long the list. Dialable: idle, and every strategy rule
    allows it now (strategy.reasons: tries left, interval passed, window open, under the
    contact limits …), the very rules a waiting target's reason is told from. A rule that
    passes slots over (the do-not-call lists) is selected instead, per slot: the claim takes
    such a target and records its listed slots as `dnc` rather than dial them. The number of
    rows is the parameter `room` (given, or bound at each run)."""
    slot_columns = [TARGETS.c[f"destination_{n}"] for n in SLOTS]
    count_columns = [TARGETS.c[f"try_count_{n}"] for n in SLOTS]
    order = [DUE, TARGETS.c.id]
    conditions = []
    campaign = situation.campaign
    if campaign is not None and campaign.priority == "fresh_first":
        tried = TARGETS.c.next_attempt_at.is_not(None)
        order.insert(0, tried)
        # Always true; it names the index's third column, so that SQLite's planner reads
        # ix_outdial_targets_fresh (untried, then tried, each in due order) instead of sorting.
        conditions.append(tried.in_([False, True]))
    return (
        select(
            TARGETS.c.id, TARGETS.c.data, TARGETS.c.name, TARGETS.c.detail,
            *slot_columns, *count_columns, TARGETS.c.first_slot,
            *dnc.listed_columns(situation),
        )
        .where(
            TARGETS.c.outdial_id == situation.param("outdial_id", Uuid()),
            TARGETS.c.tm_delete.is_(None),
            TARGETS.c.status == "idle",
            *reasons.claimable(situation),
            *conditions,
        )
        .order_by(*order)
        .limit(bindparam("room", room, type_=Integer))
        # PostgreSQL: rows another claimer holds are passed over, never waited for.
        .with_for_update(skip_locked=True)
    )


async def _claim_targets(
    session: AsyncSession,
    campaign: Campaign,
    outplan: Outplan,
    outdial: Outdial,
    situation: Situation,
    room: int,
    worker_id: str,
    now: dt.datetime,
    lease_seconds: float,
    routes: dict[str, Route],
) -> list[Claimed]:
    limits = limits_of(outplan)
    # Built once per shape of situation (strategy.reasons.cached), run with this turn's values.
    priority = campaign.priority == "fresh_first"
    query = reasons.cached(("claim", priority), situation, lambda: claim_query(situation))
    rows = (await session.execute(query, {**situation.params(), "room": room})).all()
    if not rows:
        return []

    width = len(SLOTS)
    by_slot: dict[int, list[uuid.UUID]] = defaultdict(list)
    claimed: list[Claimed] = []
    skipped: list[dict[str, Any]] = []  # campaigncalls of slots passed over (outcome dnc)
    moved: list[dict[str, Any]] = []  # targets whose first_slot moved past listed slots
    chosen: list[tuple[Any, int, bool]] = []  # (row, the slot to dial, moved past a listed one)
    for row in rows:
        destinations, counts = row[4 : 4 + width], row[4 + width : 4 + 2 * width]
        first_slot = row.first_slot
        slot = choose_destination(destinations, counts, limits, first_slot)
        # A listed destination is never dialed: its slot is recorded as `dnc` and passed
        # over, and the target moves on at once, as a next_destination rule would have it.
        listed = dnc.listed_slots(row)
        while slot is not None and slot in listed:
            skipped.append(_dnc_call(campaign, outplan, outdial, row.id, destinations[slot],
                                     slot, counts[slot], now))
            first_slot = slot + 1
            slot = choose_destination(destinations, counts, limits, first_slot)
        if first_slot != row.first_slot:
            moved.append({"b_id": row.id, "b_first": first_slot, "b_done": slot is None})
        if slot is not None:  # None: the SQL filter and the rule disagree, or all left are listed
            chosen.append((row, slot, first_slot != row.first_slot))
    budget = None
    if situation.contact_limits:
        budget = await contact_limits.CapBudget.load(
            session, campaign.customer_id, situation.contact_limits,
            [(row[4 + slot], moved) for row, slot, moved in chosen], now)
    for row, slot, _ in chosen:
        destinations, counts = row[4 : 4 + width], row[4 + width : 4 + 2 * width]
        # Over a limit with what this claim took already, or a slot reached past a listed one
        # that is capped: the target waits (its `dnc` slots stay recorded and passed over).
        if budget is not None and not budget.take(destinations[slot]):
            continue
        route = routes.get(destinations[slot].get("type"), Route(NIL_UUID, ""))
        if not route.take():  # the channel is full this round; the target waits for the next
            continue
        by_slot[slot].append(row.id)
        claimed.append(
            Claimed(
                campaigncall_id=uuid.uuid4(),
                campaign_id=campaign.id,
                target_id=row.id,
                destination=destinations[slot],
                destination_index=slot,
                try_count=counts[slot] + 1,
                source=outplan.source,
                dial_timeout=outplan.dial_timeout,
                actions=campaign.actions or [],
                outdial_data=outdial.data,
                target_data=row.data,
                target_name=row.name,
                target_detail=row.detail,
                channel_id=route.channel_id,
                channel_type=route.channel_type,
                channel_revision=route.revision,
            )
        )
    events: list[NewEvent] = []
    if moved:
        await session.execute(
            update(TARGETS)
            .where(TARGETS.c.id == bindparam("b_id"))
            .values(
                first_slot=bindparam("b_first"),
                status=case((bindparam("b_done", type_=Boolean), "done"), else_=TARGETS.c.status),
                tm_update=now,
            ),
            moved,
        )
        # Those done now say so; the others are announced as they are claimed below.
        done = [m["b_id"] for m in moved if m["b_done"]]
        if done:
            events.extend(
                (catalogue.OUTDIALTARGET_UPDATED, t.customer_id,
                 catalogue.outdialtarget(t, reasons.settled(t)))
                for t in await session.execute(select(*TARGETS.c).where(TARGETS.c.id.in_(done)))
            )
    if skipped:
        await session.execute(insert(CALLS), skipped)
        events.extend(
            (catalogue.CAMPAIGNCALL_CREATED, campaign.customer_id,
             catalogue.campaigncall(SimpleNamespace(**values)))
            for values in skipped
        )
    if not claimed:
        await emit_many(session, events, now=now)
        return []
    for slot, ids in by_slot.items():
        column = TARGETS.c[f"try_count_{slot}"]
        targets = await session.execute(
            update(TARGETS)
            .where(TARGETS.c.id.in_(ids), TARGETS.c.status == "idle")
            .values({column: column + 1, TARGETS.c.status: "progressing", TARGETS.c.tm_update: now})
            .returning(*TARGETS.c)
        )
        events.extend(
            (catalogue.OUTDIALTARGET_UPDATED, t.customer_id,
             catalogue.outdialtarget(t, reasons.settled(t)))
            for t in targets
        )
    lease_expire = now + dt.timedelta(seconds=lease_seconds)
    calls = [
        {
            **_call_row(campaign, outplan, outdial, c.target_id, now),
            "id": c.campaigncall_id,
            "status": "dialing",
            "result": "",
            "outcome": "",
            "source": c.source,
            "destination": c.destination,
            "destination_index": c.destination_index,
            "try_count": c.try_count,
            "channel_id": c.channel_id,
            "channel_type": c.channel_type,
            **NOTHING_REPORTED,
            "worker_id": worker_id,
            "tm_lease_expire": lease_expire,
            "tm_end": None,
        }
        for c in claimed
    ]
    await session.execute(insert(CALLS), calls)
    if situation.contact_limits:
        await contact_limits.record_contacts(
            session, campaign.customer_id,
            ((c.campaigncall_id, c.destination) for c in claimed), now,
        )
    # Every column was written above: the payloads need no read back.
    events.extend(
        (catalogue.CAMPAIGNCALL_CREATED, campaign.customer_id,
         catalogue.campaigncall(SimpleNamespace(**values)))
        for values in calls
    )
    await emit_many(session, events, now=now)
    return claimed


def _call_row(
    campaign: Campaign, outplan: Outplan, outdial: Outdial, target_id: uuid.UUID,
    now: dt.datetime,
) -> dict[str, Any]:
    """The columns every campaigncall of this campaign's claim shares."""
    return {
        "customer_id": campaign.customer_id,
        "campaign_id": campaign.id,
        "outplan_id": outplan.id,
        "outdial_id": outdial.id,
        "outdial_target_id": target_id,
        "queue_id": campaign.queue_id,
        "activeflow_id": NIL_UUID,
        "flow_id": NIL_UUID,
        "reference_type": "call",
        "reference_id": NIL_UUID,
        "tm_create": now,
        "tm_update": now,
        "tm_delete": None,
    }


def _dnc_call(
    campaign: Campaign, outplan: Outplan, outdial: Outdial, target_id: uuid.UUID,
    destination: dict[str, Any], slot: int, tries: int, now: dt.datetime,
) -> dict[str, Any]:
    """The campaigncall of a slot passed over because its destination is on a do-not-call
    list: done at once, no channel used, and not a try (try_count stays the slot's count)."""
    return {
        **_call_row(campaign, outplan, outdial, target_id, now),
        "id": uuid.uuid4(),
        "status": "done",
        "result": call_result(OutcomeKind.FAILED),
        "outcome": dnc.DNC_OUTCOME,
        "source": outplan.source,
        "destination": destination,
        "destination_index": slot,
        "try_count": tries,
        "channel_id": NIL_UUID,
        "channel_type": "",
        "worker_id": "",
        "tm_lease_expire": None,
        "tm_end": now,
        **NOTHING_REPORTED,
    }


async def record_outcomes(
    session: AsyncSession,
    closings: Sequence[Closing],
    answered: Sequence[uuid.UUID],
    worker_id: str,
    now: dt.datetime,
) -> list[Closing]:
    """Write down answers (dialing → progressing) and ended attempts this worker still holds.

    Returns the ended attempts written. An attempt whose lease expired has been
    closed by a reaper already: its late outcome is dropped, so none is ever closed twice.
    Rows are locked in id order, the order the heartbeat locks them in, so the two never
    deadlock.
    """
    ending = {c.campaigncall_id for c in closings}
    held: set[uuid.UUID] = set()
    for chunk in _chunks(sorted(ending | set(answered))):
        held.update(
            await session.scalars(
                select(CALLS.c.id)
                .where(CALLS.c.id.in_(chunk), CALLS.c.worker_id == worker_id, IN_FLIGHT)
                .order_by(CALLS.c.id)
                .with_for_update()
            )
        )
    talking = [a for a in answered if a in held and a not in ending]
    for chunk in _chunks(talking):
        calls = (await session.execute(
            update(CALLS)
            .where(CALLS.c.id.in_(chunk), CALLS.c.status == "dialing")
            .values(status="progressing", tm_update=now)
            .returning(*CALLS.c)
        )).all()
        await contact_limits.mark_answered(session, [c.id for c in calls])
        await emit_many(session, (
            (catalogue.CAMPAIGNCALL_UPDATED, c.customer_id, catalogue.campaigncall(c))
            for c in calls
        ), now=now)
    # Answered and ended since the last batch (an unusable answer, a shutdown mid-call): the
    # person was reached, whatever the outcome says, and counts for `answered` limits.
    await contact_limits.mark_answered(
        session, [a for a in answered if a in held and a in ending])
    mine = [c for c in closings if c.campaigncall_id in held]
    await _close_attempts(session, mine, now)
    return mine


async def end_stalled_sessions(
    session: AsyncSession, application_names: Sequence[str], stalled_seconds: float
) -> int:
    """PostgreSQL only: end the sessions of stopped workers that wait mid-message for the rest of
    it (`active`, ClientRead): a worker stopped while sending leaves its session there, with
    its locks, and no server timeout applies (idle_in_transaction_session_timeout covers a
    session between statements only). A live worker's session waits so between the parts of
    one exchange, never for longer than its longest statement may run. Only the sessions of
    our own role: another's would need a privilege we do not ask for. Returns how many."""
    ended = await session.scalar(_END_STALLED, {
        "names": [f"{name} %" for name in application_names], "stalled": stalled_seconds})
    return int(ended or 0)


_END_STALLED = text(
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND usename = current_user "
    "AND pid <> pg_backend_pid() AND application_name LIKE ANY (CAST(:names AS text[])) "
    "AND state = 'active' AND wait_event = 'ClientRead' "
    "AND state_change < clock_timestamp() - make_interval(secs => :stalled)"
)


async def reap_expired(session: AsyncSession, now: dt.datetime, most: int = CHUNK) -> list[Closing]:
    """Close attempts whose lease ran out (their worker died) as `failed`, freeing their
    targets; returns them."""
    rows = (
        await session.execute(
            select(CALLS.c.id, CALLS.c.outdial_target_id, CALLS.c.channel_type,
                   CALLS.c.destination_index)
            .where(IN_FLIGHT, CALLS.c.tm_lease_expire < now)
            .order_by(CALLS.c.id)
            .limit(most)
            .with_for_update(skip_locked=True)
        )
    ).all()
    reaped = Outcome(OutcomeKind.FAILED, detail=(
        "its engine stopped before the attempt ended (its lease ran out)"))
    closings = [
        Closing(r.id, r.outdial_target_id, OutcomeKind.FAILED, now, report=reaped,
                destination_index=r.destination_index, channel_type=r.channel_type)
        for r in rows
    ]
    await _close_attempts(session, closings, now)
    return closings


async def _close_attempts(
    session: AsyncSession, closings: Sequence[Closing], now: dt.datetime
) -> None:
    """Attempt → done with its result; target → done if answered or exhausted, else idle."""
    if not closings:
        return
    await session.execute(
        update(CALLS)
        .where(CALLS.c.id == bindparam("b_id"))
        .values(
            status="done",
            result=bindparam("b_result"),
            outcome=bindparam("b_outcome"),
            tm_end=bindparam("b_tm_end"),
            tm_update=now,
            tm_lease_expire=None,
            **{name: bindparam(f"b_{name}") for name in REPORTED},
        ),
        [
            {
                "b_id": c.campaigncall_id,
                "b_result": call_result(c.outcome),
                "b_outcome": c.outcome.value,
                "b_tm_end": c.tm_end,
                **_reported(c.report or Outcome(c.outcome)),
            }
            for c in closings
        ],
    )
    await contact_limits.mark_answered(
        session, [c.campaigncall_id for c in closings if c.outcome is OutcomeKind.ANSWERED]
    )
    next_tries = await _next_tries(session, closings)
    by_rules = [(c, next_tries[c.campaigncall_id]) for c in closings
                if next_tries[c.campaigncall_id].retry_rules]
    plain = [(c, next_tries[c.campaigncall_id]) for c in closings
             if not next_tries[c.campaigncall_id].retry_rules]
    if by_rules:
        await _close_targets_by_rules(session, by_rules, now)
    if plain:
        await _close_targets(session, plain, now)
    await _emit_closed(session, closings, now)


async def _next_tries(session: AsyncSession, closings: Sequence[Closing]) -> dict[uuid.UUID, NextTry]:
    """What the outplan says of each ended attempt's target, read now: an outplan edited while
    the call rang, or another one the campaign switched to, decides what comes next, as it
    decides the claims to come. The campaign gone, the outplan the attempt was claimed by.
    One statement: both outplans of each attempt, side by side."""
    campaigns, outplans = Campaign.__table__, Outplan.__table__
    current, claimed = outplans.alias("current"), outplans.alias("claimed")
    fields = ["id", *(f"max_try_count_{n}" for n in SLOTS), "try_interval", "retry_rules"]
    next_tries: dict[uuid.UUID, NextTry] = {}
    for chunk in _chunks([c.campaigncall_id for c in closings]):
        rows = await session.execute(
            select(CALLS.c.id,
                   *(current.c[f].label(f"current_{f}") for f in fields),
                   *(claimed.c[f].label(f"claimed_{f}") for f in fields))
            .select_from(
                CALLS.outerjoin(campaigns, and_(campaigns.c.id == CALLS.c.campaign_id,
                                                campaigns.c.tm_delete.is_(None)))
                .outerjoin(current, current.c.id == campaigns.c.outplan_id)
                .outerjoin(claimed, claimed.c.id == CALLS.c.outplan_id))
            .where(CALLS.c.id.in_(chunk)))
        for row in rows:
            which = "current" if row.current_id is not None else "claimed"
            outplan_id, *limits, interval, rules = (getattr(row, f"{which}_{f}") for f in fields)
            next_tries[row.id] = (NO_MORE_TRIES if outplan_id is None
                                  else NextTry(tuple(limits), interval, rules))
    return next_tries


async def _close_targets(
    session: AsyncSession, plain: Sequence[tuple[Closing, NextTry]], now: dt.datetime
) -> None:
    """Targets of attempts whose outplan has no retry rules: try_interval, as engine.md says."""
    limit_params = [bindparam(f"b_max_{n}", type_=Integer) for n in SLOTS]
    await session.execute(
        update(TARGETS)
        .where(TARGETS.c.id == bindparam("b_id"))
        .values(
            status=case(
                (bindparam("b_answered", type_=Boolean), "done"),
                (tries_left(limit_params), "idle"),
                else_="done",
            ),
            tm_last_end=bindparam("b_tm_end"),
            next_attempt_at=bindparam("b_next"),
            tm_update=now,
        ),
        [
            {
                "b_id": c.target_id,
                "b_answered": c.outcome is OutcomeKind.ANSWERED,
                "b_tm_end": c.tm_end,
                "b_next": c.tm_end + dt.timedelta(milliseconds=next_try.try_interval),
                **{f"b_max_{n}": next_try.limits[n] for n in SLOTS},
            }
            for c, next_try in plain
        ],
    )


async def _emit_closed(
    session: AsyncSession, closings: Sequence[Closing], now: dt.datetime
) -> None:
    """The ended attempts and their targets as they now are, each attempt then its target."""
    calls: dict[uuid.UUID, Any] = {}
    targets: dict[uuid.UUID, Any] = {}
    for chunk in _chunks([c.campaigncall_id for c in closings]):
        calls.update((r.id, r) for r in await session.execute(
            select(CALLS).where(CALLS.c.id.in_(chunk))))
    for chunk in _chunks([c.target_id for c in closings]):
        targets.update((r.id, r) for r in await session.execute(
            select(TARGETS).where(TARGETS.c.id.in_(chunk))))
    events: list[NewEvent] = []
    for closing in closings:
        call = calls[closing.campaigncall_id]
        events.append((catalogue.CAMPAIGNCALL_UPDATED, call.customer_id,
                       catalogue.campaigncall(call)))
        target = targets.get(closing.target_id)
        if target is not None:
            # An idle one's waiting is left out: telling it takes the rules' situation of its
            # outdial, loaded per outdial on every write-down (GET …/targets/{id} tells it).
            events.append((catalogue.OUTDIALTARGET_UPDATED, target.customer_id,
                           catalogue.outdialtarget(target, reasons.settled(target))))
    await emit_many(session, events, now=now)


async def _close_targets_by_rules(
    session: AsyncSession, closings: Sequence[tuple[Closing, NextTry]], now: dt.datetime
) -> None:
    """Targets of attempts whose outplan has retry rules: each outcome's rule says when the
    next attempt is due, whether the slot is passed over, or whether the target is done."""
    tries: dict[uuid.UUID, tuple[int, dict[str, Any]]] = {}
    for chunk in _chunks(sorted({c.target_id for c, _ in closings})):
        rows = await session.execute(
            select(TARGETS.c.id, TARGETS.c.first_slot, TARGETS.c.outcome_tries)
            .where(TARGETS.c.id.in_(chunk))
        )
        tries.update({r.id: (r.first_slot, r.outcome_tries or {}) for r in rows})
    params = []
    for c, next_try in closings:
        first_slot, counts = tries.get(c.target_id, (0, {}))
        slot = str(c.destination_index)
        mine = dict(counts.get(slot, {}))
        mine[c.outcome.value] = mine.get(c.outcome.value, 0) + 1
        decision = retry.decide(next_try.retry_rules, c.outcome.value, c.tm_end,
                                next_try.try_interval, mine[c.outcome.value])
        if decision.move_on:
            first_slot = max(first_slot, c.destination_index + 1)
        params.append({
            "b_id": c.target_id,
            "b_done": c.outcome is OutcomeKind.ANSWERED or decision.finish,
            "b_first": first_slot,
            "b_tries": {**counts, slot: mine},
            "b_tm_end": c.tm_end,
            "b_next": decision.next_attempt_at,
            **{f"b_max_{n}": next_try.limits[n] for n in SLOTS},
        })
    limit_params = [bindparam(f"b_max_{n}", type_=Integer) for n in SLOTS]
    first_slot = bindparam("b_first", type_=Integer)
    await session.execute(
        update(TARGETS)
        .where(TARGETS.c.id == bindparam("b_id"))
        .values(
            status=case(
                (bindparam("b_done", type_=Boolean), "done"),
                (tries_left(limit_params, first_slot), "idle"),
                else_="done",
            ),
            first_slot=first_slot,
            outcome_tries=bindparam("b_tries", type_=TARGETS.c.outcome_tries.type),
            tm_last_end=bindparam("b_tm_end"),
            next_attempt_at=bindparam("b_next"),
            tm_update=now,
        ),
        params,
    )


async def renew_leases(
    session: AsyncSession, worker_id: str, now: dt.datetime, lease_seconds: float
) -> set[uuid.UUID]:
    """Extend every lease this worker holds; returns the attempts it still holds."""
    # Locked in id order first, as record_outcomes does, so the two never deadlock.
    mine = (
        select(CALLS.c.id)
        .where(CALLS.c.worker_id == worker_id, IN_FLIGHT)
        .order_by(CALLS.c.id)
        .with_for_update()
    )
    rows = await session.scalars(
        update(CALLS)
        .where(CALLS.c.id.in_(mine.scalar_subquery()))
        .values(tm_lease_expire=now + dt.timedelta(seconds=lease_seconds))
        .returning(CALLS.c.id)
    )
    return set(rows)


# What a channel says about an attempt, written on its campaigncall under the same names
# (its `detail` as outcome_detail).
REPORTED = ("sip_code", "sip_reason", "hangup_by", "digits", "smtp_code", "smtp_reply",
            "message_id", "outcome_detail")
_OUTCOME_FIELD = {"outcome_detail": "detail"}
NUMERIC_REPORTS = ("sip_code", "smtp_code")
# A new attempt's report: nothing said yet.
NOTHING_REPORTED = {name: 0 if name in NUMERIC_REPORTS else "" for name in REPORTED}
# The most of one text a campaigncall keeps: a trunk or relay chooses these words, and its
# reason phrase or Contact may be of any length.
REPORT_CHARS = 1000
# C0 controls (tab aside), DEL and C1 controls: PostgreSQL stores no NUL, and none belongs in
# a reply.
_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)], " ")


def reported_text(text: str) -> str:
    """A channel's words as a campaigncall keeps them: readable back on every database (no
    NUL or other control character, no lone surrogate), and at most REPORT_CHARS long."""
    clean = text.translate(_CONTROLS)[:REPORT_CHARS]
    return clean.encode("utf-8", "replace").decode("utf-8")


def _reported(report: Outcome) -> dict[str, Any]:
    """The report's fields as columns: what the channel did not say is 0 or ""."""
    values: dict[str, Any] = {}
    for name in REPORTED:
        value = getattr(report, _OUTCOME_FIELD.get(name, name))
        if value is None:
            value = 0 if name in NUMERIC_REPORTS else ""
        if isinstance(value, Enum):
            value = value.value
        values[f"b_{name}"] = reported_text(value) if isinstance(value, str) else value
    return values


def _chunks(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
