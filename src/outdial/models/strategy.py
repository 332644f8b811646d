"""The contact history that contact limits are counted from."""

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base


class Contact(Base):
    """One attempt on a normalised destination (strategy.limits.contact_address), kept while
    some contact limit of its customer may still count it."""

    __tablename__ = "contacts"

    # The attempt's campaigncall id: one contact per attempt.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    address: Mapped[str] = mapped_column(String(1100))
    answered: Mapped[bool] = mapped_column(default=False)
    tm_create: Mapped[dt.datetime]

    __table_args__ = (
        # A destination's contacts in a rolling window.
        Index("ix_contacts_address", "customer_id", "address", "tm_create"),
        # The oldest contacts, to prune. Not per customer: with the customer first, the
        # planner may read a customer's whole window through it instead of one destination's.
        Index("ix_contacts_age", "tm_create"),
    )
