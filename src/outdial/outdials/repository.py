"""SQL for outdials and targets."""

import functools
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Insert, ScalarSelect, Select, bindparam, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.repository import CallerCheck
from outdial.db.driver import DriverConnection
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import Campaign, Outdial, OutdialTarget


_OUTDIALS, _TARGETS = Outdial.__table__, OutdialTarget.__table__
_ONE_OUTDIAL = (_OUTDIALS.c.id == bindparam("outdial_id"),
                _OUTDIALS.c.customer_id == bindparam("customer_id"))


# The hot statements are built once per kind of caller check: building a statement costs more
# CPU than running it.
@functools.cache
def _outdial_with(permission: ScalarSelect) -> Select:
    return select(*_OUTDIALS.c, permission.label("permission")).where(*_ONE_OUTDIAL)


@functools.cache
def _insert_target_if(permission: ScalarSelect, permissions: tuple[str, ...]) -> Insert:
    # The permissions are constants of the SQL text (compiled once, see db/driver.py).
    allowed = [literal_column(f"'{p}'") for p in permissions]
    values = select(*(bindparam(f"new_{c.key}", type_=c.type) for c in _TARGETS.c)).where(
        *_ONE_OUTDIAL, _OUTDIALS.c.tm_delete.is_(None), permission.in_(allowed))
    return insert(_TARGETS).from_select(list(_TARGETS.c.keys()), values)


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
) -> bool:
    """Insert a target of these (every) column values in one statement, INSERT … SELECT from
    its outdial, only if the outdial is its customer's and live and the caller has one of
    `permissions`; whether it was. The statement is a transaction of its own."""
    added = await connection.execute(
        _insert_target_if(check.permission, permissions),
        {**{f"new_{key}": value for key, value in values.items()},
         "outdial_id": values["outdial_id"], "customer_id": values["customer_id"],
         **check.parameters},
    )
    return added == 1


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
