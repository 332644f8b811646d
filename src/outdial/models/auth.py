"""Customers (tenants), agents (users), access keys and the server's own secrets."""

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(default="")
    # How often one destination may be contacted across every campaign (strategy.limits).
    contact_limits: Mapped[list] = mapped_column(default=list)
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str]
    permission: Mapped[str] = mapped_column(String(16))
    # Carried by its login tokens; a password change raises it, refusing every earlier token.
    token_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]


class AccessKey(Base):
    __tablename__ = "accesskeys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # The agent who made the key: it acts with that agent's permission and dies with the agent.
    # NULL only for keys made before keys had an owner (they live until deleted or expired).
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id"), index=True)
    name: Mapped[str] = mapped_column(default="")
    detail: Mapped[str] = mapped_column(default="")
    # SHA-256 of the secret: the secret is random and long, so a slow hash buys nothing here,
    # and a fast one lets every request find its key by index.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tm_expire: Mapped[dt.datetime]
    tm_create: Mapped[dt.datetime]
    tm_update: Mapped[dt.datetime | None]
    tm_delete: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_accesskeys_customer_id_tm_create", "customer_id", "tm_create", "id"),)


class ServerSecret(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str]
