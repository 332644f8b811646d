"""Outplans (retry plans), campaigns (runs) and campaigncalls (attempts)."""

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import NIL_UUID, Base


class Outplan(Base):
    __tablename__ = "outplans"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    source: Mapped[dict | None]
    dial_timeout: Mapped[int] = mapped_column(default=30000)  # ms
    # ms; up to 30 days, which is more than a 32-bit integer holds.
    try_interval: Mapped[int] = mapped_column(BigInteger, default=60000)
    max_try_count_0: Mapped[int] = mapped_column(default=1)
    max_try_count_1: Mapped[int] = mapped_column(default=0)
    max_try_count_2: Mapped[int] = mapped_column(default=0)
    max_try_count_3: Mapped[int] = mapped_column(default=0)
    max_try_count_4: Mapped[int] = mapped_column(default=0)
    # The channels that dial tel/sip and email destinations; both nil: the server's simulated
    # dialer (the quick start).
    sip_channel_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    email_channel_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    # What each outcome does next (strategy/retry.py); None: every outcome waits try_interval.
    retry_rules: Mapped[dict | None]
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_outplans_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )

    def max_try_count(self, slot: int) -> int:
        return getattr(self, f"max_try_count_{slot}")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(16), default="call")
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    status: Mapped[str] = mapped_column(String(16), default="stop")
    service_level: Mapped[int] = mapped_column(default=0)
    end_handle: Mapped[str] = mapped_column(String(16), default="stop")
    actions: Mapped[list] = mapped_column(default=list)
    outplan_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    outdial_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    queue_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    next_campaign_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    concurrency: Mapped[int] = mapped_column(default=10)
    dial_rate: Mapped[int] = mapped_column(default=10)
    # When destinations may be dialed, in their own zones (strategy.windows); None: any time.
    calling_window: Mapped[dict | None]
    # Which due target goes first: due_first (earliest due) or fresh_first (untried ones).
    priority: Mapped[str] = mapped_column(String(16), default="due_first")
    # The do-not-call lists the campaign honours, besides its customer's applies_to_all ones.
    dnclist_ids: Mapped[list] = mapped_column(default=list)
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_campaigns_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
        Index("ix_campaigns_status", "status"),
    )


class Campaigncall(Base):
    __tablename__ = "campaigncalls"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id"))
    outplan_id: Mapped[uuid.UUID]
    outdial_id: Mapped[uuid.UUID]
    outdial_target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outdial_targets.id"))
    queue_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    activeflow_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    flow_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    reference_type: Mapped[str] = mapped_column(String(16), default="call")
    reference_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    status: Mapped[str] = mapped_column(String(16), default="dialing")
    result: Mapped[str] = mapped_column(String(16), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="")
    source: Mapped[dict | None]
    destination: Mapped[dict | None]
    destination_index: Mapped[int]
    try_count: Mapped[int]
    # Which channel placed the attempt (nil: the server's simulated dialer) and what it said.
    channel_id: Mapped[uuid.UUID] = mapped_column(default=NIL_UUID)
    channel_type: Mapped[str] = mapped_column(String(16), default="simulated")
    sip_code: Mapped[int] = mapped_column(default=0)  # the final SIP response code; 0: none
    sip_reason: Mapped[str] = mapped_column(default="")
    hangup_by: Mapped[str] = mapped_column(String(16), default="")  # callee, us, or ""
    digits: Mapped[str] = mapped_column(default="")  # DTMF keys the callee pressed
    smtp_code: Mapped[int] = mapped_column(default=0)  # the relay's last reply code; 0: none
    smtp_reply: Mapped[str] = mapped_column(default="")  # its text, or why no reply came
    message_id: Mapped[str] = mapped_column(default="")  # Message-ID of the email sent
    outcome_detail: Mapped[str] = mapped_column(default="")  # why it ended so, if said
    # Internal: the engine process holding the attempt, and until when its claim is good.
    worker_id: Mapped[str] = mapped_column(String(64), default="")
    tm_lease_expire: Mapped[dt.datetime | None]
    tm_end: Mapped[dt.datetime | None]
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_campaigncalls_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
        Index("ix_campaigncalls_campaign_page", "campaign_id", "tm_create", "id"),
        # The database itself refuses a second attempt in flight for one target.
        Index(
            "uq_campaigncalls_one_in_flight", "outdial_target_id", unique=True,
            sqlite_where=text("status <> 'done'"), postgresql_where=text("status <> 'done'"),
        ),
        Index(
            "ix_campaigncalls_in_flight", "campaign_id", "tm_lease_expire",
            sqlite_where=text("status <> 'done'"), postgresql_where=text("status <> 'done'"),
        ),
        # A channel's pacing: its attempts in flight and those started in the last second.
        Index(
            "ix_campaigncalls_channel_in_flight", "channel_id",
            sqlite_where=text("status <> 'done'"), postgresql_where=text("status <> 'done'"),
        ),
        Index("ix_campaigncalls_channel_started", "channel_id", "tm_create"),
    )


# Outdial statistics count answered targets: attempts that succeeded, by outdial.
Index(
    "ix_campaigncalls_answered", Campaigncall.outdial_id, Campaigncall.outdial_target_id,
    sqlite_where=text("result = 'success'"), postgresql_where=text("result = 'success'"),
)
