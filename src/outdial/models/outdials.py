"""Outdials (dialing lists) and their targets."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, SmallInteger, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import NIL_UUID, Base
from outdial.outdials.destinations import DESTINATION_SLOTS, address_forms
from outdial.strategy.windows import zone_key


def _zone_key_default(context: Any) -> str:
    """A target stored without a zone_key gets the one of the values it is stored with."""
    values = context.get_current_parameters()
    return zone_key(values.get("timezone"),
                    (values.get(f"destination_{n}") for n in range(DESTINATION_SLOTS)))


def _address_forms_default(context: Any) -> int:
    """A target stored without address_forms gets the ones of the addresses it is stored with."""
    values = context.get_current_parameters()
    return address_forms(values.get(f"destination_{n}") for n in range(DESTINATION_SLOTS))


class Outdial(Base):
    __tablename__ = "outdials"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    campaign_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    data: Mapped[str] = mapped_column(default="")
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        # Keyset paging of a customer's live outdials, newest first.
        Index(
            "ix_outdials_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )


RETRY_WAIT = "tm_delete IS NULL AND status = 'idle' AND tm_last_end IS NOT NULL"


class OutdialTarget(Base):
    __tablename__ = "outdial_targets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # On PostgreSQL these two keys are checked once per statement by triggers instead of per
    # row (migration 0007): the same rule, without its cost on a million-row import.
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    outdial_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outdials.id"))
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    data: Mapped[str] = mapped_column(default="")
    status: Mapped[str] = mapped_column(String(16), default="idle")
    destination_0: Mapped[dict | None]
    destination_1: Mapped[dict | None]
    destination_2: Mapped[dict | None]
    destination_3: Mapped[dict | None]
    destination_4: Mapped[dict | None]
    try_count_0: Mapped[int] = mapped_column(default=0)
    try_count_1: Mapped[int] = mapped_column(default=0)
    try_count_2: Mapped[int] = mapped_column(default=0)
    try_count_3: Mapped[int] = mapped_column(default=0)
    try_count_4: Mapped[int] = mapped_column(default=0)
    # Whether some attempt on the target succeeded: set by a database trigger when a
    # campaigncall's result becomes `success` (migration 0007), so the stats count answered
    # targets from counters instead of joining the calls.
    answered: Mapped[bool] = mapped_column(default=False, server_default=false())
    # When the last attempt ended: the engine's retry interval runs from here.
    tm_last_end: Mapped[dt.datetime | None]
    # When a retry is due (the last end plus the try_interval); unset until the first attempt
    # ends, when the target is due since its creation. The engine claims earliest due first.
    next_attempt_at: Mapped[dt.datetime | None]
    # The contact's own IANA time zone, if known better than from the number.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # The zones the campaign's calling window must be open in to dial this target
    # (strategy.windows.zone_key), written with the target from its timezone and destinations.
    zone_key: Mapped[str] = mapped_column(default=_zone_key_default)
    # How the export may write each stored address without checking it, worked out as it is
    # written (outdials.destinations.address_forms); 0, "check it", for any other writer.
    address_forms: Mapped[int] = mapped_column(SmallInteger, default=_address_forms_default,
                                               server_default=text("0"))
    # Slots below this one are passed over: a retry rule or a do-not-call entry moved the
    # target on from them (strategy/retry.py).
    first_slot: Mapped[int] = mapped_column(default=0)
    # Until when some destination may be on a do-not-call list of the customer (NULL: none is):
    # written by the database on every write of an entry or a target (migration 0012), read
    # by the waiting-reason counts and the claim to skip the lists' probes.
    listed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Under retry rules: how many tries ended in each outcome, per slot ({"0": {"busy": 2}}).
    outcome_tries: Mapped[dict | None]
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        # The distinct zone keys of an outdial, read one index probe each (strategy.reasons).
        Index(
            "ix_outdial_targets_zone_key", "outdial_id", "zone_key",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
        Index(
            "ix_outdial_targets_live_page", "outdial_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
        # The engine's claim: an outdial's idle targets, earliest due first (engine.repository.DUE).
        Index(
            "ix_outdial_targets_due", "outdial_id", "status",
            text("coalesce(next_attempt_at, tm_create)"), "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
        # The stats' waiting_retry: idle targets whose last attempt ended within the retry
        # interval, counted along a range of this index (outdials.stats).
        Index(
            "ix_outdial_targets_retry_wait", "outdial_id", "tm_last_end",
            sqlite_where=text(RETRY_WAIT), postgresql_where=text(RETRY_WAIT),
        ),
        # The waiting-reason counts: targets whose first_slot moved on (strategy.reasons_counts).
        Index(
            "ix_outdial_targets_moved_on", "outdial_id",
            sqlite_where=text("tm_delete IS NULL AND first_slot > 0"),
            postgresql_where=text("tm_delete IS NULL AND first_slot > 0"),
        ),
        # The targets that may be on a do-not-call list (strategy.reasons_counts).
        Index(
            "ix_outdial_targets_listed", "outdial_id", "listed_until",
            sqlite_where=text("tm_delete IS NULL AND listed_until IS NOT NULL"),
            postgresql_where=text("tm_delete IS NULL AND listed_until IS NOT NULL"),
        ),
        # The claim of a fresh_first campaign: untried targets (no next attempt set) first.
        Index(
            "ix_outdial_targets_fresh", "outdial_id", "status",
            text("(next_attempt_at IS NOT NULL)"), text("coalesce(next_attempt_at, tm_create)"),
            "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )

    def destination(self, slot: int) -> dict | None:
        return getattr(self, f"destination_{slot}")

    def try_count(self, slot: int) -> int:
        return getattr(self, f"try_count_{slot}")


# The shape of a group of live targets counted together (outdials.counts): everything the
# stats need to tell which of them are dialable under any outplan's limits.
COUNT_KEY = ("outdial_id", "status", "answered", "destinations",
             *(f"try_count_{n}" for n in range(DESTINATION_SLOTS)), "zone_key")


class OutdialTargetCount(Base):
    """How many live targets of an outdial have one shape: status, answered, which slots hold
    a destination (bit N for destination_N) and the try counts. Kept by database triggers on
    outdial_targets (migration 0007), in the transaction of each change."""

    __tablename__ = "outdial_target_counts"

    outdial_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    answered: Mapped[bool] = mapped_column(primary_key=True)
    destinations: Mapped[int] = mapped_column(primary_key=True)
    try_count_0: Mapped[int] = mapped_column(primary_key=True)
    try_count_1: Mapped[int] = mapped_column(primary_key=True)
    try_count_2: Mapped[int] = mapped_column(primary_key=True)
    try_count_3: Mapped[int] = mapped_column(primary_key=True)
    try_count_4: Mapped[int] = mapped_column(primary_key=True)
    # The calling window holds whole zone keys (strategy.reasons_counts; migration 0017).
    zone_key: Mapped[str] = mapped_column(primary_key=True)
    targets: Mapped[int] = mapped_column(BigInteger)


class OutdialTargetCountChange(Base):
    """PostgreSQL: a change to the counts, appended by the triggers (so that concurrent writers
    never wait on one counter row) and folded into outdial_target_counts by the compactor.
    Unused on SQLite, whose triggers update the counts directly (one writer at a time)."""

    __tablename__ = "outdial_target_count_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    outdial_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    answered: Mapped[bool]
    destinations: Mapped[int]
    try_count_0: Mapped[int]
    try_count_1: Mapped[int]
    try_count_2: Mapped[int]
    try_count_3: Mapped[int]
    try_count_4: Mapped[int]
    zone_key: Mapped[str]
    targets: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_outdial_target_count_changes_outdial", "outdial_id"),)


class CountCompaction(Base):
    """The lease of the process that folds count changes into the counts (one at a time)."""

    __tablename__ = "count_compactions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), default="")
    tm_lease_expire: Mapped[dt.datetime | None]
