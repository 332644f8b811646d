"""The outbox: one row per change, written in the transaction of the change."""

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base


class Event(Base):
    __tablename__ = "events"

    # Ids only grow (AUTOINCREMENT on SQLite: pruning the newest rows never lets an id come
    # back), so a reader resumes after the last id it saw (events/outbox.py says when an id is
    # safe to pass on PostgreSQL, where ids are taken before their transactions commit).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    customer_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(64))
    tm_create: Mapped[dt.datetime]
    # The resource as the API returns it (events/catalogue.py builds it).
    data: Mapped[dict]

    __table_args__ = (
        Index("ix_events_customer_id_id", "customer_id", "id"),
        Index("ix_events_tm_create", "tm_create"),
        {"sqlite_autoincrement": True},
    )
