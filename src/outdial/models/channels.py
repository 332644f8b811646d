"""Channels: a customer's SIP trunks, SMTP relays and simulated channels."""

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    type: Mapped[str] = mapped_column(String(16))  # sip, smtp, simulated
    # The type's settings, checked on the way in; never holds the password.
    settings: Mapped[dict] = mapped_column(default=dict)
    # The password, encrypted with the server's channel key (channels/secrets.py); None: none.
    password_encrypted: Mapped[str | None]
    # Goes up with every change, so that engines rebuild the channel's dialer.
    revision: Mapped[int] = mapped_column(default=1)
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(
            "ix_channels_live_page", "customer_id", "tm_create", "id",
            sqlite_where=text("tm_delete IS NULL"), postgresql_where=text("tm_delete IS NULL"),
        ),
    )
