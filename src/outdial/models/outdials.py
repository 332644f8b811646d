"""Outdials (dialing lists) and their targets."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import NIL_UUID, Base
from outdial.outdials.destinations import DESTINATION_SLOTS  # noqa: F401 - re-exported
from outdial.strategy.windows import zone_key


def _zone_key_default(context: Any) -> str:
    """A target stored without a zone_key gets the one of the values it is stored with."""
    values = context.get_current_parameters()
    return zone_key(values.get("timezone"),
                    (values.get(f"destination_{n}") for n in range(DESTINATION_SLOTS)))


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


class OutdialTarget(Base):
    __tablename__ = "outdial_targets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
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
    # Slots below this one are passed over: a retry rule or a do-not-call entry moved the
    # target on from them (strategy/retry.py).
    first_slot: Mapped[int] = mapped_column(default=0)
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
