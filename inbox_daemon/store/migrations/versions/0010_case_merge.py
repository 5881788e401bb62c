"""cases.merged_into and cases.cc_contacts: merging a case into another

A merged case is closed with a pointer to the case it went into (replies to its thread land
there); the customers of the merged cases are answered on the surviving case in Cc.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (batch mode would copy the table, which SQLite refuses while activities
    # refer to it).
    op.add_column("cases", sa.Column("merged_into", sa.String(length=32), nullable=True))
    op.add_column(
        "cases",
        sa.Column("cc_contacts", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("cc_contacts")
        batch.drop_column("merged_into")
