"""The outdial's targets counted per waiting reason, without reading every target.

Most targets' reasons do not depend on the time: a target being dialed, a done one (answered or
exhausted), an idle one without tries left, an idle one of a campaign that is not running. The
database keeps the counts of live targets per shape (status, answered, which slots hold a
destination, try counts, zone key: outdials.counts), and those say each of these — and, for
every other idle target, `outside_calling_window` if its zone key is closed now (the window
holds whole keys: a third of a list, or all of it at night, is read from a few counts), else
`dialable` unless some other rule holds it now.

Which it does depends on the time (a retry interval, a list entry, a cap), but
each rule says in SQL (`Rule.may_hold`) which targets it may hold now, along an index over those
targets only. The reason's own SQL expression (reasons.reason_sql, the one the claim's rules
make) is asked of those targets, and of those whose first_slot was moved on (the shapes do not
know it), and replaces what their shape said. So a target held by two rules counts once, under
the reason the rules give, exactly as the claim and the target's page say.

A rule without `may_hold` makes every idle target be asked: exact still, but as slow as reading
every row. Everything is read in one statement, at one snapshot.
"""

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.elements import True_

from outdial.db import index_value
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.counts import shape_of, shapes_query
from outdial.strategy import reasons
from outdial.strategy.reasons import DIALABLE, EXHAUSTED, IN_PROGRESS, TARGETS, Situation

ANSWERED = reasons.ANSWERED
NOT_RUNNING = "campaign_not_running"
WINDOW = "outside_calling_window"
# Decided by the shapes (the running state, the tries left of a target whose first_slot is 0,
# its zone key's window).
BY_SHAPE = (NOT_RUNNING, EXHAUSTED, WINDOW)
# A target whose first_slot moved on: the shapes cannot tell its tries left. The constant is
# written into the SQL to match the partial index ix_outdial_targets_moved_on.
MOVED_ON = TARGETS.c.first_slot > literal_column("0")


def _terms(s: Situation) -> list[ColumnElement[bool]] | None:
    """The conditions that find every idle target whose reason its shape may not tell: moved
    on, or held (maybe) by some rule now; None: every idle target."""
    terms: list[Any] = [MOVED_ON]
    for rule in reasons.RULES:
        if rule.reason in BY_SHAPE or rule.allows(s) is None:
            continue
        if rule.may_hold is None or (clauses := rule.may_hold(s)) is None:
            return None
        if any(isinstance(clause, True_) for clause in clauses):
            return None
        # One SELECT per rule: an OR over one index (or two) the planner still reads as a
        # bitmap; more SELECTs cost more planning than they save.
        terms.append(or_(*clauses))
    return terms


def _reads_a_table(term: ColumnElement[bool]) -> bool:
    return any(isinstance(e, Select) for e in visitors.iterate(term))


def _asked_rows(s: Situation, *columns: Any) -> Any:
    """`columns` of the targets asked: one SELECT per condition, each along its own index
    (written as one OR, the planner reads the whole list), each leaving out the targets an
    earlier one found, made one list by UNION ALL: every target once, with no sort or hash
    of the asked targets to find the ones found twice. A condition that reads another table
    (the capped addresses) comes last, so that no other SELECT evaluates it again."""
    live_idle = (TARGETS.c.outdial_id == s.outdial_id, TARGETS.c.tm_delete.is_(None),
                 TARGETS.c.status == index_value("idle"))
    terms = _terms(s)
    if terms is None:
        return select(TARGETS.c.id, *columns).where(*live_idle)
    terms.sort(key=_reads_a_table)
    return union_all(*(
        select(TARGETS.c.id, *columns).where(
            *live_idle, term, *(earlier.is_not(true()) for earlier in terms[:n]))
        for n, term in enumerate(terms)
    ))


def asked(s: Situation) -> ColumnElement[bool]:
    """SQL true for the targets the counts ask the rules about (true: every target)."""
    if _terms(s) is None:
        return true()
    return TARGETS.c.id.in_(select(_asked_rows(s).subquery().c.id))


def _shape_reason(s: Situation) -> ColumnElement[str]:
    """What the target's shape says of it (a running campaign), as `counts` reads a shape:
    exhausted as if its first_slot were 0, else outside the window if its zone key is
    closed, else dialable."""
    assert s.limits is not None
    whens: list[Any] = [(~reasons.tries_left(s.limits, first_slot=literal(0, Integer())),
                         literal(EXHAUSTED, String()))]
    if (in_window := reasons.in_window(s)) is not None:
        whens.append((reasons.held(in_window), literal(WINDOW, String())))
    return case(*whens, else_=literal(DIALABLE, String()))


def _closed(s: Situation, zone_key: str) -> bool:
    """A zone key the window holds now, as reasons.in_window says (a key the situation does
    not know is held: it is not among the open keys)."""
    return s.window is not None and zone_key not in s.open_keys


def _statement(s: Situation) -> Any:
    shapes = shapes_query(s.outdial_id).subquery()
    parts = [select(
        *(shapes.c[c] for c in shapes.c.keys() if c != "targets"),
        literal(None, String()).label("reason"), literal(None, String()).label("by_shape"),
        shapes.c.targets,
    )]
    if s.running:
        # The targets the rules are asked about, counted per (reason, what the shape said).
        per_row = _asked_rows(
            s, reasons.reason_sql(s).label("reason"), _shape_reason(s).label("by_shape"),
        ).subquery()
        parts.append(select(
            *(literal(None, shapes.c[c].type).label(c) for c in shapes.c.keys() if c != "targets"),
            per_row.c.reason, per_row.c.by_shape, func.count().label("targets"),
        ).group_by(per_row.c.reason, per_row.c.by_shape))
    return union_all(*parts)


async def counts(session: AsyncSession, s: Situation) -> dict[str, int]:
    from outdial.engine.rules import choose_destination  # the engine imports this module

    await reasons.plan_for_rows(session)
    if s.running and _terms(s) is not None and session.bind.dialect.name == "postgresql":
        # Every part is written to be read along an index over a few rows (the capped
        # addresses: each looked up in the index of the targets' values). The planner's
        # estimates (a comparison with the time: a third of the list; the capped addresses:
        # many) would make it read the whole list instead, as a scan or the side of a hash
        # join. Off for the rest of this transaction.
        # The asked targets are counted per (reason, what the shape said), a handful of
        # groups, in a hash table: the planner, which cannot tell how few groups the reasons
        # make, would sort a hundred thousand of them first (on disk, with the default
        # work_mem of 4 MB).
        await session.execute(text(
            "SELECT set_config('enable_seqscan', 'off', true), "
            "set_config('enable_hashjoin', 'off', true), "
            "set_config('enable_mergejoin', 'off', true), "
            "set_config('enable_sort', 'off', true), set_config('work_mem', '64MB', true)"))
    result = dict.fromkeys(reasons.reasons(), 0)
    for row in await session.execute(_statement(s)):
        if row.reason is not None or row.by_shape is not None:  # an asked target
            result[row.reason] += int(row.targets)
            result[row.by_shape] -= int(row.targets)
            continue
        shape = shape_of(row)
        if shape.status == "progressing":
            reason = IN_PROGRESS
        elif shape.status != "idle":
            reason = ANSWERED if shape.answered else EXHAUSTED
        elif not s.running:
            reason = NOT_RUNNING
        else:
            assert s.limits is not None
            slots = [True if shape.has_destination(n) else None for n in range(DESTINATION_SLOTS)]
            has_tries = choose_destination(slots, shape.try_counts, s.limits) is not None
            reason = (EXHAUSTED if not has_tries else WINDOW if _closed(s, shape.zone_key)
                      else DIALABLE)
        result[reason] += shape.targets
    return result
