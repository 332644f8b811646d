"""targets' zone keys name a whole country's zones by its prefix ("+1" for the 42 zones of a
North American number with no known area code), as strategy.windows.key_of_zones writes them

Revision ID: 0012_importzone
Revises: 0011_retry_dnc
Create Date: 2026-11-28 03:40:00.000000
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_importzone"
down_revision: str | None = "0011_retry_dnc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here, not imported: a migration keeps doing what it did when it was written.
MANY_ZONES = 4


def _countries() -> dict[str, frozenset[str]]:
    from phonenumbers.tzdata import TIMEZONE_DATA

    return {prefix: frozenset(zones) for prefix, zones in sorted(TIMEZONE_DATA.items())
            if len(zones) >= MANY_ZONES}


def _short(key: str, countries: dict[str, frozenset[str]]) -> str:
    names = set(key.split(" "))
    tokens = {f"+{prefix}" for prefix, zones in countries.items() if zones <= names}
    for token in tokens:
        names -= countries[token[1:]]
    return " ".join(sorted(names | tokens))


def _long(key: str, countries: dict[str, frozenset[str]]) -> str:
    names: set[str] = set()
    for token in key.split(" "):
        names.update(countries.get(token[1:], {token}) if token.startswith("+") else {token})
    return " ".join(sorted(names))


def _rewrite(change: Callable[[str, dict[str, frozenset[str]]], str]) -> None:
    """Each distinct key rewritten once, in one UPDATE of the targets that have it: keys are few
    (the zone sets of an outdial's numbers), targets many."""
    bind = op.get_bind()
    countries = _countries()
    targets = sa.table("outdial_targets", sa.column("zone_key", sa.String()))
    keys = bind.execute(sa.select(targets.c.zone_key).distinct()).scalars().all()
    for key in keys:
        new = change(key, countries)
        if new != key:
            bind.execute(sa.update(targets).where(targets.c.zone_key == key).values(zone_key=new))


def upgrade() -> None:
    _rewrite(_short)


def downgrade() -> None:
    _rewrite(_long)
