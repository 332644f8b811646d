"""SQL for outdials and targets."""

import functools
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement, Insert, ScalarSelect, Select, bindparam, exists, insert, literal_column, select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.repository import CallerCheck
from outdial.db.driver import DriverConnection
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import Campaign, Outdial, OutdialTarget, Outplan
from outdial.models.base import NIL_UUID


_OUTDIALS, _TARGETS = Outdial.__table__, OutdialTarget.__table__
_CAMPAIGNS, _OUTPLANS = Campaign.__table__, Outplan.__table__
_ONE_OUTDIAL = (_OUTDIALS.c.id == bindparam("outdial_id"),
                _OUTDIALS.c.customer_id == bindparam("customer_id"))


# The hot statements are built once per kind of caller check: building a statement costs more
# CPU than running it.
@functools.cache
def _outdial_with(permission: ScalarSelect) -> Select:
    return select(*_OUTDIALS.c, permission.label("permission")).where(*_ONE_OUTDIAL)


# Whether an outdial has a running campaign, as strategy.reasons.situation decides it: the
# outdial's campaign is live and runs, on this outdial, with a live outplan.
_RUNNING_OUTDIAL = _OUTDIALS.alias("running_outdial")
_CAMPAIGN_RUNNING = select(exists().where(
    _RUNNING_OUTDIAL.c.id == bindparam("outdial_id"), _RUNNING_OUTDIAL.c.tm_delete.is_(None),
    _RUNNING_OUTDIAL.c.campaign_id != NIL_UUID,
    _CAMPAIGNS.c.id == _RUNNING_OUTDIAL.c.campaign_id, _CAMPAIGNS.c.tm_delete.is_(None),
    _CAMPAIGNS.c.status == literal_column("'run'"),
    _CAMPAIGNS.c.outdial_id == _RUNNING_OUTDIAL.c.id, _CAMPAIGNS.c.outplan_id != NIL_UUID,
    _OUTPLANS.c.id == _CAMPAIGNS.c.outplan_id, _OUTPLANS.c.tm_delete.is_(None),
)).scalar_subquery()


@functools.cache
def _insert_target_if(permission: ScalarSelect, permissions: tuple[str, ...]) -> Insert:
    # The permissions are constants of the SQL text (compiled once, see db/driver.py).
    allowed = [literal_column(f"'{p}'") for p in permissions]
    values = select(*(bindparam(f"new_{c.key}", type_=c.type) for c in _TARGETS.c)).where(
        *_ONE_OUTDIAL, _OUTDIALS.c.tm_delete.is_(None), permission.in_(allowed))
    return (insert(_TARGETS).from_select(list(_TARGETS.c.keys()), values)
            .returning(_CAMPAIGN_RUNNING.label("campaign_running")))


# What a new target's columns hold when not set: the model's plain defaults (a Core INSERT
# writes every column as given, without the ORM to apply them), else NULL.
TARGET_DEFAULTS: dict[str, Any] = {
    c.key: c.default.arg if c.default is not None and c.default.is_scalar else None
    for c in _TARGETS.c
}


class NewTarget(SimpleNamespace):
    """A target as a Core INSERT wrote it: every column an attribute, as on the model."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(**values)


async def outdial_row(
    connection: DriverConnection, customer_id: uuid.UUID, outdial_id: uuid.UUID,
    check: CallerCheck,
) -> Any:
    """The outdial's columns and the caller's permission (as `permission`), one statement on a
    hot route's driver connection; None if the customer has no such outdial."""
    return await connection.fetch_one(
        _outdial_with(check.permission),
        {"outdial_id": outdial_id, "customer_id": customer_id, **check.parameters},
    )


async def insert_target_if(
    connection: DriverConnection, values: dict[str, Any], check: CallerCheck,
    permissions: tuple[str, ...],
) -> bool | None:
    """Insert a target of these (every) column values in one statement, INSERT … SELECT from
    its outdial, only if the outdial is its customer's and live and the caller has one of
    `permissions`; the statement is a transaction of its own. None if it inserted nothing;
    else whether the outdial's campaign runs as of that transaction, which it returns (what a
    new target's waiting reason follows from, see service.fresh_target_waiting)."""
    row = await connection.fetch_one(
        _insert_target_if(check.permission, permissions),
        {**{f"new_{key}": value for key, value in values.items()},
         "outdial_id": values["outdial_id"], "customer_id": values["customer_id"],
         **check.parameters},
    )
    return None if row is None else bool(row.campaign_running)


class OutdialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_outdial(
        self, customer_id: uuid.UUID, outdial_id: uuid.UUID, *, for_update: bool = False
    ) -> Outdial | None:
        query = select(Outdial).where(Outdial.id == outdial_id, Outdial.customer_id == customer_id)
        if for_update:
            # Locked (and re-read) when its campaign link is about to change.
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def get_campaign(self, customer_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign | None:
        """The campaign an outdial may name: only one of the same customer."""
        return await self.session.scalar(
            select(Campaign).where(Campaign.id == campaign_id, Campaign.customer_id == customer_id)
        )

    async def list_outdials(self, customer_id: uuid.UUID, page: PageRequest) -> Page[Outdial]:
        query = select(Outdial).where(Outdial.customer_id == customer_id, Outdial.tm_delete.is_(None))
        return await fetch_page(self.session, query, Outdial, page)

    async def get_target(
        self, outdial_id: uuid.UUID, target_id: uuid.UUID, *, for_update: bool = False
    ) -> OutdialTarget | None:
        query = select(OutdialTarget).where(
            OutdialTarget.id == target_id, OutdialTarget.outdial_id == outdial_id
        )
        # Locked when it is about to change, so the engine cannot claim it in between.
        return await self.session.scalar(query.with_for_update() if for_update else query)

    async def list_targets(
        self, outdial_id: uuid.UUID, page: PageRequest, status: str | None = None
    ) -> Page[OutdialTarget]:
        query = select(OutdialTarget).where(
            OutdialTarget.outdial_id == outdial_id, OutdialTarget.tm_delete.is_(None)
        )
        if status is not None:
            query = query.where(OutdialTarget.status == status)
        return await fetch_page(self.session, query, OutdialTarget, page)

    def add(self, row: Outdial | OutdialTarget) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()
