"""agents: the generation of their login tokens

Revision ID: 0021_tokengeneration
Revises: 0020_outcomedetail
Create Date: 2026-11-29 14:40:00.000000

An agent's password can be changed (`outdial agent password`). Its login tokens carry the
agent's token generation; the change raises it, so every token issued before is refused.
Tokens issued before this migration carry none and count as generation 0.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_tokengeneration"
down_revision: str | None = "0020_outcomedetail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a constant default: no copy of the table on either database.
    op.add_column("agents", sa.Column(
        "token_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    # Every token refused by a password change counts as generation 0 again after a downgrade
    # and the next upgrade: the tokens issued before a change work again until they expire.
    op.drop_column("agents", "token_generation")
