"""activities.subject as text: a subject is kept whole, however long

A subject longer than 1,000 characters was cut on storage without a word. The activity now
keeps the whole subject; only the case title is cut, and its audit trail says so.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.alter_column(
            "subject",
            existing_type=sa.String(length=1000),
            type_=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    activities = sa.table("activities", sa.column("subject", sa.Text()))
    op.execute(activities.update().values(subject=sa.func.substr(activities.c.subject, 1, 1000)))
    with op.batch_alter_table("activities") as batch:
        batch.alter_column(
            "subject",
            existing_type=sa.Text(),
            type_=sa.String(length=1000),
            existing_nullable=False,
        )
