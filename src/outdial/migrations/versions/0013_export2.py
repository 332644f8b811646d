"""outdial_targets.address_forms: how the export may write each stored address

Revision ID: 0013_export2
Revises: 0012_importzone
Create Date: 2026-11-28 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_export2"
down_revision: str | None = "0012_importzone"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SLOTS = range(5)
# An address changed by a statement that did not write the forms (address_forms unchanged):
# its form is no longer known, and the export checks it. (An edit that writes an address of the
# same form as before is taken for such a statement too: slower to export, never wrong.)
FORGET_CHANGED_FORMS = """
CREATE FUNCTION outdial_targets_forget_forms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.address_forms = OLD.address_forms THEN
""" + "".join(f"""        IF NEW.destination_{n}::text IS DISTINCT FROM OLD.destination_{n}::text
        THEN
            NEW.address_forms := NEW.address_forms & ~{3 << 2 * n};
        END IF;
""" for n in SLOTS) + """    END IF;
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    # Targets already stored get 0: the export checks their addresses as before. A plain ADD
    # COLUMN, which SQLite takes as it is (a batch would copy the table).
    op.add_column("outdial_targets", sa.Column("address_forms", sa.SmallInteger(), nullable=False,
                                               server_default=sa.text("0")))
    if op.get_bind().dialect.name == "postgresql":  # SQLite's export does not read the forms
        op.execute(FORGET_CHANGED_FORMS)
        op.execute("CREATE TRIGGER outdial_targets_forget_forms BEFORE UPDATE OF "
                   + ", ".join(f"destination_{n}" for n in SLOTS)
                   + " ON outdial_targets FOR EACH ROW"
                   " EXECUTE FUNCTION outdial_targets_forget_forms()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER outdial_targets_forget_forms ON outdial_targets")
        op.execute("DROP FUNCTION outdial_targets_forget_forms()")
    op.drop_column("outdial_targets", "address_forms")
