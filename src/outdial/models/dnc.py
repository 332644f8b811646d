"""Do-not-call lists of a customer and their entries (normalised destinations)."""

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base


class Dnclist(Base):
    __tablename__ = "dnclists"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    # Honoured by every campaign of the customer, named in its dnclist_ids or not.
    applies_to_all: Mapped[bool] = mapped_column(default=False)
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_dnclists_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )


class DncEntry(Base):
    __tablename__ = "dnc_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    dnclist_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dnclists.id"))
    type: Mapped[str] = mapped_column(String(16))  # tel, sip or email
    # The normalised destination (strategy/dnc.py): E.164, a lower-cased SIP URI or email.
    value: Mapped[str]
    tm_expire: Mapped[dt.datetime | None]  # None: never expires
    tm_create: Mapped[dt.datetime]

    __table_args__ = (
        # One entry per value and list; the claim looks its batch's destinations up here.
        Index("uq_dnc_entries_list_value", "dnclist_id", "value", unique=True),
        Index("ix_dnc_entries_page", "dnclist_id", "tm_create", "id"),
    )
