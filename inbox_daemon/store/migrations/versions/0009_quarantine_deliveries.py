"""quarantine.deliveries: the same bytes set aside again count on their one row

A mail delivered again under a new source id (a Maildir file copied back, an IMAP message
appended twice) added a quarantine row each time. Now the row of the same bytes from the same
mailbox counts the deliveries instead.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(
            sa.Column("deliveries", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.create_index("ix_quarantine_bytes", ["channel", "mailbox", "sha256"])


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_index("ix_quarantine_bytes")
        batch.drop_column("deliveries")
