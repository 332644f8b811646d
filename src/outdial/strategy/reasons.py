"""Why a target is waiting (strategy.md §5), from the very rules the engine claims by.

Each rule says in SQL when it *allows* an idle target to be dialed now. The engine's claim is
the conjunction of every rule's `allows` (engine.repository.claim_query); a target's
`waiting_reason` is the first rule whose `allows` is not true, with that rule's `until` as its
`next_attempt_at` and its `detail` (which zone, which list). Both are built from the same
expressions, so what a target is said to wait for is what keeps the claim from taking it: one
definition, never two that drift apart. Being SQL, the reason is a column expression: a target
page, the export (its COPY included) and the stats' counts per reason select it like any column.

Another rule is added with `add_rule`: e.g. the do-not-call lists, before the calling window.

A rule's SQL reads what changes from one moment to the next (the time, which zones are open,
the lists) as bound parameters named in `Situation.params`: the claim's statement and a target's
waiting fields are built once per shape of situation (`cached`) and then only run with the
values of the moment, so building the expression is not paid on every claim or target request.
"""

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    Uuid,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.db import index_value
from outdial.models import Campaign, Campaigncall, Customer, Outdial, OutdialTarget, Outplan
from outdial.models.base import NIL_UUID
from outdial.outdials.destinations import DESTINATION_SLOTS
from outdial.strategy import limits as caps
from outdial.strategy.windows import CallingWindow, KeyState, key_states

TARGETS = OutdialTarget.__table__
CALLS = Campaigncall.__table__
# When a target is due: a never-tried one since its creation, a retry at its last end plus the
# try_interval (stored as next_attempt_at when the attempt closes). Claims go earliest due
# first, along the index ix_outdial_targets_due, whose expression this must stay equal to.
DUE = func.coalesce(TARGETS.c.next_attempt_at, TARGETS.c.tm_create)

# Every reason a target can be given, in the order the rules are asked (then the states).
DIALABLE = "dialable"
IN_PROGRESS = "in_progress"
ANSWERED = "answered"
EXHAUSTED = "exhausted"

Limits = tuple[int, ...]


def tries_left(
    max_try_counts: Sequence[Any], first_slot: Any = TARGETS.c.first_slot
) -> ColumnElement[bool]:
    """SQL for "some slot from first_slot on has a destination and tries left" (see
    rules.choose_destination; slots below first_slot were moved on from by a retry rule or a
    do-not-call entry)."""
    terms = [
        and_(TARGETS.c[f"destination_{n}"].is_not(None), TARGETS.c[f"try_count_{n}"] < limit,
             first_slot <= n)
        for n, limit in zip(range(DESTINATION_SLOTS), max_try_counts, strict=True)
        if not isinstance(limit, int) or limit > 0
    ]
    return or_(*terms) if terms else false()


@dataclass
class Situation:
    """What the rules read, loaded once per claim (or page, export, stats): the outdial's
    campaign and outplan, the open zones now, the customer's contact limits."""

    now: dt.datetime
    customer_id: uuid.UUID
    outdial_id: uuid.UUID
    running: bool = True
    limits: Limits | None = None  # the outplan's max_try_count_N; None: no outplan
    try_interval: int = 0  # ms
    window: CallingWindow | None = None
    zones: dict[str, KeyState] = field(default_factory=dict)
    contact_limits: tuple[caps.ContactLimit, ...] = ()
    campaign: Campaign | None = None
    outplan: Outplan | None = None
    # What added rules load for themselves in their `prepare` (e.g. the lists a campaign honours).
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The values the rules' SQL reads, by bound parameter name: what changes from one
        situation to the next of one shape (the time, the zones' states, the lists)."""
        values: dict[str, Any] = {
            "now": self.now,
            "customer_id": self.customer_id,
            "outdial_id": self.outdial_id,
            "try_interval": self.try_interval,
            "interval_cutoff": self.now - dt.timedelta(milliseconds=self.try_interval),
        }
        if self.open_keys:
            values["open_keys"] = self.open_keys
        for n, (key, state) in enumerate(self.closed_zones):
            values[f"closed_key_{n}"] = key
            values[f"closed_opens_{n}"] = state.opens_at
            values[f"closed_zone_{n}"] = state.zone
        for n, limit in enumerate(self.contact_limits):
            values[f"cap_since_{n}"] = caps.since(limit, self.now)
        for rule in RULES:
            if rule.params is not None:
                values.update(rule.params(self))
        return values

    def shape(self) -> tuple[Any, ...]:
        """What the rules' SQL is built from, beside its parameters' values: situations of one
        shape share one statement (built once, see `cached`)."""
        return (tuple(RULES), self.running, self.limits, _has_retry_rules(self),
                self.window is not None, self.contact_limits, tuple(sorted(self.params())))

    def param(self, name: str, type_: Any = None) -> Any:
        """The bound parameter `name`, carrying this situation's value (so that a statement
        built from it also runs, or is written out, as it is)."""
        value = self.params()[name]
        return bindparam(name, value, type_=type_, expanding=isinstance(value, list))

    @property
    def closed_zones(self) -> list[tuple[str, KeyState]]:
        return [(key, state) for key, state in sorted(self.zones.items()) if not state.open]

    @property
    def open_keys(self) -> list[str]:
        return sorted(key for key, state in self.zones.items() if state.open)

    def nothing_open(self) -> bool:
        """A window that is shut for every zone of the list: no need to ask the database."""
        return self.window is not None and not self.open_keys


Clause = ColumnElement[Any] | None


@dataclass(frozen=True)
class Rule:
    reason: str
    # SQL: this rule lets an idle target be dialed now; None: it lets every target be.
    allows: Callable[[Situation], Clause]
    # SQL: when it will let the target be dialed (the target's next_attempt_at); None: unknown.
    until: Callable[[Situation], Clause] = lambda _: None
    # SQL text: what the waiting is about (a zone, a list); None: nothing more to say.
    detail: Callable[[Situation], Clause] = lambda _: None
    # Loads what `allows` needs into situation.extra, once per situation.
    prepare: Callable[[AsyncSession, Situation], Awaitable[None]] | None = None
    # True: the claim does not leave a target this rule holds: it takes it and passes the
    # held slot over (the do-not-call lists); the target's reason is still this rule's.
    passes_over: bool = False
    # The values of the bound parameters this rule's SQL reads (Situation.param), by name.
    params: Callable[[Situation], dict[str, Any]] | None = None
    # SQL conditions, one of which is true for every idle target this rule may hold now, each
    # along an index over the held rows only (strategy.reasons_counts); None: the counts must
    # ask every row.
    may_hold: Callable[[Situation], list[ColumnElement[bool]] | None] | None = None


def _not_running(s: Situation) -> Clause:
    return None if s.running else false()


def _has_tries(s: Situation) -> Clause:
    return None if s.limits is None else tries_left(s.limits)


def _has_retry_rules(s: Situation) -> bool:
    return s.outplan is not None and bool(s.outplan.retry_rules)


def _interval_passed(s: Situation) -> Clause:
    now = s.param("now", DateTime())
    if _has_retry_rules(s):
        # Under retry rules the wait depends on the outcome (strategy.retry): next_attempt_at,
        # written when the attempt closed, alone says when.
        return DUE <= now
    return and_(
        DUE <= now,
        # Never sooner than the outplan's interval now, even if it grew since the target's
        # next_attempt_at was set.
        or_(
            TARGETS.c.tm_last_end.is_(None),
            TARGETS.c.tm_last_end <= s.param("interval_cutoff", DateTime()),
        ),
    )


def _interval_ends(s: Situation) -> Clause:
    if _has_retry_rules(s):
        return DUE
    after_last = caps.shifted(TARGETS.c.tm_last_end, s.param("try_interval", Integer()))
    return case((DUE > s.param("now", DateTime()), DUE), else_=after_last)


def _may_wait_interval(s: Situation) -> list[ColumnElement[bool]]:
    """Every target _interval_passed holds: due later, or (without retry rules) ended within
    the interval; ranges of ix_outdial_targets_due and ix_outdial_targets_retry_wait."""
    later = DUE > s.param("now", DateTime())
    if _has_retry_rules(s):
        return [later]
    return [later, TARGETS.c.tm_last_end > s.param("interval_cutoff", DateTime())]


def in_window(s: Situation) -> Clause:
    if s.window is None:
        return None
    return TARGETS.c.zone_key.in_(s.param("open_keys", String())) if s.open_keys else false()


def _per_closed_zone(s: Situation, name: str, type_: Any) -> Clause:
    """For a target in a closed zone, that zone's `name` (closed_opens: when it opens,
    closed_zone: which zone keeps it shut)."""
    closed = s.closed_zones
    if not closed:
        return None
    return case(
        *((s.param(f"closed_key_{n}", String()), s.param(f"{name}_{n}", type_))
          for n in range(len(closed))),
        value=TARGETS.c.zone_key, else_=None,
    )


def _window_opens(s: Situation) -> Clause:
    return _per_closed_zone(s, "closed_opens", DateTime())


def _window_zone(s: Situation) -> Clause:
    return _per_closed_zone(s, "closed_zone", String())


def value_sql(column: Any) -> ColumnElement[str]:
    """A destination column's normalised value (outdials.destinations.dnc_value in SQL): what
    do-not-call entries and contact limits are keyed on. NULL for no destination."""
    kind, target = column["type"].as_string(), column["target"].as_string()
    low = address_fold(target)
    sip = case(
        (low.like("sip:%"), low),
        (low.like("sips:%"), literal("sip:", String()) + func.substr(low, 6)),
        else_=literal("sip:", String()) + low,
    )
    return case((kind == "tel", target), (kind == "sip", sip), else_=low)


class address_fold(FunctionElement[str]):
    """A text case-folded by the one mapping of outdials.casefold, by which Python writes the
    entries' and contacts' keys: outdial_casefold() on PostgreSQL (migration 0019), lower() on
    SQLite, where every connection registers that mapping as lower() (db.sqlite)."""

    type = String()
    inherit_cache = True


@compiles(address_fold, "postgresql")
def _address_fold_postgresql(element: address_fold, compiler: Any, **kw: Any) -> str:
    return f"outdial_casefold({compiler.process(list(element.clauses)[0], **kw)})"


@compiles(address_fold)
def _address_fold_sqlite(element: address_fold, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(list(element.clauses)[0], **kw)})"


class stored_value(FunctionElement[str]):
    """A destination column's normalised value written as the indexes on the targets'
    values are (ix_outdial_targets_value_N, migration 0012): the database's own function on
    PostgreSQL, the same CASE as the index on SQLite. The same value as value_sql."""

    type = String()
    inherit_cache = True


@compiles(stored_value, "postgresql")
def _stored_value_postgresql(element: stored_value, compiler: Any, **kw: Any) -> str:
    return f"outdial_dnc_value({compiler.process(list(element.clauses)[0], **kw)})"


@compiles(stored_value)  # SQLite, and SQL written out for reading
def _stored_value_sqlite(element: stored_value, compiler: Any, **kw: Any) -> str:
    column = compiler.process(list(element.clauses)[0], **kw)
    kind, target = f"json_extract({column}, '$.type')", f"json_extract({column}, '$.target')"
    return (f"CASE WHEN {kind} = 'tel' THEN {target} WHEN {kind} = 'sip' THEN CASE "
            f"WHEN lower({target}) LIKE 'sip:%' THEN lower({target}) "
            f"WHEN lower({target}) LIKE 'sips:%' THEN 'sip:' || substr(lower({target}), 6) "
            f"ELSE 'sip:' || lower({target}) END ELSE lower({target}) END")


def next_value_sql(s: Situation) -> ColumnElement[str]:
    """The normalised value of the destination the engine dials next (rules.choose_destination:
    the lowest slot from first_slot on with a destination and tries left)."""
    whens = []
    for n in range(DESTINATION_SLOTS):
        column = TARGETS.c[f"destination_{n}"]
        present = and_(column.is_not(None), TARGETS.c.first_slot <= n)
        if s.limits is not None:
            if s.limits[n] <= 0:
                continue
            present = and_(present, TARGETS.c[f"try_count_{n}"] < s.limits[n])
        whens.append((present, value_sql(column)))
    return case(*whens, else_=None) if whens else literal(None, String())


def _cap_sinces(s: Situation) -> list[Any]:
    return [s.param(f"cap_since_{n}", DateTime()) for n in range(len(s.contact_limits))]


def _under_limits(s: Situation) -> Clause:
    return caps.within_limits(s.contact_limits, s.param("customer_id", Uuid()),
                              next_value_sql(s), _cap_sinces(s))


def _may_be_capped(s: Situation) -> list[ColumnElement[bool]] | None:
    """Every target _under_limits holds: one with a destination whose address has reached a
    limit now, its targets found along ix_outdial_targets_value_N."""
    if not s.contact_limits:
        return None
    capped = union(*(
        select(caps.CONTACTS.c.address)
        .where(caps.counted(limit, s.param("customer_id", Uuid()), None, since))
        .group_by(caps.CONTACTS.c.address).having(func.count() >= limit.max)
        for limit, since in zip(s.contact_limits, _cap_sinces(s), strict=True)
    )).subquery()
    return [
        and_(TARGETS.c.customer_id == s.param("customer_id", Uuid()),
             TARGETS.c[f"destination_{n}"].is_not(None),
             stored_value(TARGETS.c[f"destination_{n}"]).in_(select(capped.c.address)))
        for n in range(DESTINATION_SLOTS) if s.limits is None or s.limits[n] > 0
    ]


def _limits_free(s: Situation) -> Clause:
    return caps.frees_at(s.contact_limits, s.param("customer_id", Uuid()), next_value_sql(s),
                         _cap_sinces(s))


RULES: list[Rule] = [
    Rule("campaign_not_running", _not_running),
    Rule(EXHAUSTED, _has_tries),
    Rule("retry_interval", _interval_passed, until=_interval_ends, may_hold=_may_wait_interval),
    # No may_hold: the counts read a closed window from the counts per zone key
    # (strategy.reasons_counts), without asking the rules about its targets.
    Rule("outside_calling_window", in_window, until=_window_opens, detail=_window_zone),
    Rule("contact_limit", _under_limits, until=_limits_free, may_hold=_may_be_capped),
]


def add_rule(rule: Rule, *, before: str | None = None) -> None:
    """Add a rule, asked just before the rule of reason `before`, or last (once; a reload
    replaces it)."""
    RULES[:] = [r for r in RULES if r.reason != rule.reason]
    at = len(RULES) if before is None else next(
        i for i, r in enumerate(RULES) if r.reason == before)
    RULES.insert(at, rule)


def reasons() -> list[str]:
    """Every waiting_reason, in the order they are asked."""
    return [r.reason for r in RULES if r.reason != EXHAUSTED] + [
        DIALABLE, IN_PROGRESS, ANSWERED, EXHAUSTED
    ]


# -- SQL ------------------------------------------------------------------------------------


def claimable(s: Situation) -> list[ColumnElement[bool]]:
    """The claim's conditions on an idle target: every rule allows it (but those that pass a
    slot over, which the claim selects instead)."""
    return [clause for rule in RULES
            if not rule.passes_over and (clause := rule.allows(s)) is not None]


def _answered() -> ColumnElement[bool]:
    """A done target with a successful attempt (along ix_campaigncalls_answered)."""
    return exists().where(
        CALLS.c.outdial_id == TARGETS.c.outdial_id,
        CALLS.c.outdial_target_id == TARGETS.c.id,
        CALLS.c.result == index_value("success"),
    )


def held(allows: ColumnElement[Any]) -> ColumnElement[bool]:
    # Not true (false or unknown): exactly the rows a WHERE on `allows` leaves out.
    return allows.is_not(true())


def reason_sql(s: Situation) -> ColumnElement[str]:
    """The waiting_reason of each target; NULL for a deleted one."""
    whens: list[tuple[Any, Any]] = [
        (TARGETS.c.tm_delete.is_not(None), literal(None, String())),
        (TARGETS.c.status == "progressing", literal(IN_PROGRESS)),
        (TARGETS.c.status != "idle", case((_answered(), literal(ANSWERED)), else_=literal(EXHAUSTED))),
    ]
    for rule in RULES:
        if (allows := rule.allows(s)) is not None:
            whens.append((held(allows), literal(rule.reason)))
    return case(*whens, else_=literal(DIALABLE))


def _per_rule(s: Situation, part: str, dialable: Any) -> ColumnElement[Any]:
    whens: list[tuple[Any, Any]] = [
        (TARGETS.c.tm_delete.is_not(None), literal(None)),
        (TARGETS.c.status != "idle", literal(None)),
    ]
    for rule in RULES:
        if (allows := rule.allows(s)) is not None:
            value = getattr(rule, part)(s)
            whens.append((held(allows), value if value is not None else literal(None)))
    return case(*whens, else_=dialable)


def next_attempt_sql(s: Situation) -> ColumnElement[Any]:
    """When the target may be dialed: due now for a dialable one, the waiting rule's time for a
    waiting one, NULL for one being dialed or done (or when no time can be told)."""
    return _per_rule(s, "until", DUE)


def detail_sql(s: Situation) -> ColumnElement[Any]:
    return _per_rule(s, "detail", literal(None, String()))


def columns(s: Situation) -> list[ColumnElement[Any]]:
    """waiting_reason, next_attempt_at and waiting_detail, labelled, to add to a SELECT."""
    return [
        reason_sql(s).label("waiting_reason"),
        next_attempt_sql(s).label("next_attempt_at"),
        detail_sql(s).label("waiting_detail"),
    ]


# -- loading a situation ----------------------------------------------------------------------


async def plan_for_rows(session: AsyncSession) -> None:
    """The rules' SQL runs subqueries per row: PostgreSQL's cost estimates for it reach the JIT
    threshold, and compiling (seconds) then costs far more than running (milliseconds). Off for
    the rest of this transaction."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))


async def zone_keys(session: AsyncSession, outdial_id: uuid.UUID) -> list[str]:
    """The distinct zone keys of an outdial's live targets: one probe of
    ix_outdial_targets_zone_key per key (a loose index scan), however long the list."""
    rows = await session.execute(text("""
        WITH RECURSIVE k(key) AS (
            SELECT min(zone_key) FROM outdial_targets
            WHERE outdial_id = :outdial_id AND tm_delete IS NULL
            UNION ALL
            SELECT (SELECT min(zone_key) FROM outdial_targets
                    WHERE outdial_id = :outdial_id AND tm_delete IS NULL AND zone_key > k.key)
            FROM k WHERE k.key IS NOT NULL
        )
        SELECT key FROM k WHERE key IS NOT NULL
    """).bindparams(bindparam("outdial_id", type_=Uuid())), {"outdial_id": outdial_id})
    return [row[0] for row in rows]


async def situation(
    session: AsyncSession,
    outdial: Outdial,
    now: dt.datetime,
    *,
    campaign: Campaign | None = None,
    outplan: Outplan | None = None,
) -> Situation:
    """The situation of an outdial's targets now. The engine passes the campaign and outplan
    it holds; otherwise they are those the outdial names (none: the campaign is not running)."""
    if campaign is None and outdial.campaign_id != NIL_UUID:
        campaign = await session.get(Campaign, outdial.campaign_id)
        if campaign is not None and campaign.tm_delete is not None:
            campaign = None
    if outplan is None and campaign is not None and campaign.outplan_id != NIL_UUID:
        outplan = await session.get(Outplan, campaign.outplan_id)
        if outplan is not None and outplan.tm_delete is not None:
            outplan = None
    # The one definition of "the outdial's campaign runs", the same as the SQL a new target's
    # INSERT returns it by (outdials.repository._CAMPAIGN_RUNNING): a live outdial and a
    # running campaign that name each other, with a live outplan.
    running = (
        outdial.tm_delete is None
        and campaign is not None and campaign.tm_delete is None
        and outplan is not None and outplan.tm_delete is None
        and campaign.status == "run" and campaign.outdial_id == outdial.id
        and outdial.campaign_id == campaign.id
    )
    customer_limits = await session.scalar(
        select(Customer.contact_limits).where(Customer.id == outdial.customer_id)
    )
    s = Situation(
        now=now, customer_id=outdial.customer_id, outdial_id=outdial.id, running=running,
        limits=tuple(outplan.max_try_count(n) for n in range(DESTINATION_SLOTS)) if outplan else None,
        try_interval=outplan.try_interval if outplan else 0,
        window=CallingWindow.of(campaign.calling_window) if campaign else None,
        contact_limits=caps.ContactLimit.all_of(customer_limits),
        campaign=campaign, outplan=outplan,
    )
    if s.window is not None:
        s.zones = key_states(s.window, await zone_keys(session, outdial.id), now)
    for rule in RULES:
        if rule.prepare is not None:
            await rule.prepare(session, s)
    return s


@dataclass(frozen=True)
class Waiting:
    reason: str | None
    next_attempt_at: dt.datetime | None
    detail: str | None


# Statements built from the rules, by what they are for and the situation's shape. Building
# one is far dearer than running it for a few targets; the values change, the shapes are few.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}
_MOST_STATEMENTS = 256


def cached(kind: Any, s: Situation, build: Callable[[], Any]) -> Any:
    """The statement of this kind for situations shaped like `s`, built once (by `build`, from
    `s`); run it with s.params() (and the kind's own parameters)."""
    key = (kind, s.shape())
    statement = _STATEMENTS.get(key)
    if statement is None:
        if len(_STATEMENTS) >= _MOST_STATEMENTS:
            _STATEMENTS.clear()
        statement = _STATEMENTS[key] = build()
    return statement


async def waiting_of(
    session: AsyncSession, s: Situation, target_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Waiting]:
    """The reason, time and detail of some targets (one, or a page of them): one statement."""
    if not target_ids:
        return {}
    if len(target_ids) > 1:  # one target's plan is far too cheap to reach the JIT threshold
        await plan_for_rows(session)
    statement = cached("waiting_of", s, lambda: select(TARGETS.c.id, *columns(s)).where(
        TARGETS.c.id.in_(bindparam("target_ids", expanding=True))))
    rows = await session.execute(statement, {**s.params(), "target_ids": list(target_ids)})
    return {
        row.id: Waiting(row.waiting_reason, as_datetime(row.next_attempt_at), row.waiting_detail)
        for row in rows
    }


def settled(target: Any) -> Waiting | None:
    """The waiting of a target row that no rule is asked about: being dialed or done, as the
    first cases of reason_sql say (the `answered` column is kept equal to "has a successful
    attempt" by the database, migration 0007). None for an idle target: that takes the rules
    (waiting_of), and for a deleted one."""
    if target.tm_delete is not None:
        return None
    if target.status == "progressing":
        return Waiting(IN_PROGRESS, None, None)
    if target.status != "idle":
        return Waiting(ANSWERED if target.answered else EXHAUSTED, None, None)
    return None


def as_datetime(value: Any) -> dt.datetime | None:
    """A CASE mixing stored and computed times reads back as text on SQLite."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


async def reason_counts(session: AsyncSession, s: Situation) -> dict[str, int]:
    """How many live targets of the outdial wait for each reason (every reason present, 0 if
    none). Exact, and without reading every target (strategy.reasons_counts): the counts per
    shape kept by the database, and the reason's SQL expression over the targets some rule
    may hold now, found along indexes."""
    from outdial.strategy.reasons_counts import counts

    return await counts(session, s)


# Rules defined with their own subject register themselves here (they import this module).
from outdial.strategy import dnc as _dnc  # noqa: E402,F401
