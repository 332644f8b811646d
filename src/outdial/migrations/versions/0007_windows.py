"""calling windows (campaigns.calling_window, targets' timezone and zone_key), contact limits
(customers.contact_limits) and the contact history they count

Revision ID: 0007_windows
Revises: 0007_webhooks
Create Date: 2026-11-27 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_windows"
down_revision: str | None = "0007_webhooks"  # after the other 0007 revisions of main
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "tm_delete IS NULL"
BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calling_window", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contact_limits", sa.JSON(none_as_null=True), nullable=False,
                      server_default="[]")
        )
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("zone_key", sa.String(), nullable=False, server_default="*"))
        batch_op.create_index(
            "ix_outdial_targets_zone_key", ["outdial_id", "zone_key"], unique=False,
            sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
        )
    _zone_keys_of_existing_targets()

    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=1100), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("tm_create", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_contacts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_address", ["customer_id", "address", "tm_create"], unique=False
        )
        batch_op.create_index("ix_contacts_age", ["tm_create"], unique=False)


def _zone_keys_of_existing_targets() -> None:
    """Targets stored before zone keys: the zones of their tel numbers, as stored from now on
    (no explicit timezone existed, so the number decides; "*" is the campaign's default)."""
    from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

    def zones(number: str) -> tuple[str, ...]:
        digits = number[1:]
        for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
            found = TIMEZONE_DATA.get(digits[:length])
            if found is not None:
                return () if found == ("Etc/Unknown",) else tuple(found)
        return ()

    bind = op.get_bind()
    targets = sa.table(
        "outdial_targets", sa.column("id", sa.Uuid()), sa.column("zone_key", sa.String()),
        *(sa.column(f"destination_{n}", sa.JSON()) for n in range(5)),
    )
    after = None
    while True:
        query = sa.select(targets).order_by(targets.c.id).limit(BATCH)
        if after is not None:
            query = query.where(targets.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            return
        updates = []
        for row in rows:
            found: set[str] = set()
            for n in range(5):
                destination = getattr(row, f"destination_{n}")
                if destination is None:
                    continue
                by_number = zones(destination["target"]) if destination["type"] == "tel" else ()
                found.update(by_number or ("*",))
            key = " ".join(sorted(found)) if found else "*"
            if key != "*":
                updates.append({"b_id": row.id, "b_key": key})
        if updates:
            bind.execute(
                sa.update(targets).where(targets.c.id == sa.bindparam("b_id"))
                .values(zone_key=sa.bindparam("b_key")),
                updates,
            )
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_age")
        batch_op.drop_index("ix_contacts_address")
    op.drop_table("contacts")
    with op.batch_alter_table("outdial_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_outdial_targets_zone_key", sqlite_where=sa.text(LIVE),
                            postgresql_where=sa.text(LIVE))
        batch_op.drop_column("zone_key")
        batch_op.drop_column("timezone")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("contact_limits")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("calling_window")
