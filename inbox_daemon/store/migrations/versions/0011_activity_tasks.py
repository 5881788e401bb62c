"""activities.due_at, assignee, result: the tasks and phone calls agents log

A task has a due time and an agent it is assigned to; a settled task keeps the result it was
closed with (the diagnostic task's "Solution found", "Escalation required" …). Existing
activities get none of them.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode copies the table, which SQLite refuses while rows refer to it.
    op.add_column("activities", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("activities", sa.Column("assignee", sa.String(length=100), nullable=True))
    op.add_column("activities", sa.Column("result", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("result")
        batch.drop_column("assignee")
        batch.drop_column("due_at")
