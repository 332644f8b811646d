"""Webhooks: a customer's HTTP endpoints, and each event's delivery to each of them."""

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base

PENDING = "status = 'pending'"


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    url: Mapped[str]
    # The event types delivered; empty: every type.
    event_types: Mapped[list] = mapped_column(default=list)
    # The signing secret (whsec_…), encrypted with the server's channel key like a channel's
    # password: the signer needs it in clear, the database alone must not give it away.
    secret_encrypted: Mapped[str]
    status: Mapped[str] = mapped_column(String(16), default="enabled")  # enabled, disabled
    detail: Mapped[str] = mapped_column(default="")  # why it was disabled
    # The last event of the customer's outbox turned into deliveries (or passed over).
    event_cursor: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                              default=0)
    # Failed attempts in a row; a success resets it, too many disable the webhook.
    failures: Mapped[int] = mapped_column(default=0)
    # The process sending a run of its new events, and until when without a heartbeat (a run
    # of deliveries already made is leased on the deliveries themselves).
    owner: Mapped[str | None] = mapped_column(String(64))
    tm_lease_expire: Mapped[dt.datetime | None]
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_webhooks_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )


class WebhookDelivery(Base):
    """One event for one webhook (or a test ping), and its latest attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID]
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id"))
    # The event delivered (no foreign key: events are pruned on their own schedule); None for
    # a test ping.
    event_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    # Retries stop webhooks_retry_window_seconds after this: the first attempt, or a manual
    # retry.
    tm_queued: Mapped[dt.datetime]
    # The process sending it now, and until when its claim holds without a heartbeat.
    owner: Mapped[str | None] = mapped_column(String(64))
    tm_lease_expire: Mapped[dt.datetime | None]
    # What the latest attempt got: the HTTP status (0: no answer), its time, and what failed.
    response_code: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(default="")
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]

    __table_args__ = (
        # Exactly one delivery of an event to a webhook, whichever process fans it out.
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_page", "webhook_id", "tm_create", "id"),
        # An endpoint's pending deliveries in event order: its first one, and its next run.
        Index("ix_webhook_deliveries_pending", "webhook_id", "event_id",
              sqlite_where=text(PENDING), postgresql_where=text(PENDING)),
        Index("ix_webhook_deliveries_tm_create", "tm_create"),  # retention
    )
