"""activities.automatic_to: the indexed recipient of an automatic outgoing message

The hourly limit of automatic answers per address counted by matching the JSON text of
``recipients`` over every automatic message of the hour, quadratic in a backlog. Existing
automatic outgoing messages are filled in from their first recipient.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("automatic_to", sa.String(length=400), nullable=True))
        batch.create_index("ix_activities_automatic_to", ["automatic_to", "created_at"])
    activities = sa.table(
        "activities",
        sa.column("id", sa.BigInteger()),
        sa.column("direction", sa.String()),
        sa.column("automatic", sa.Boolean()),
        sa.column("recipients", sa.JSON()),
        sa.column("automatic_to", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(activities.c.id, activities.c.recipients).where(
            activities.c.direction == "outgoing", activities.c.automatic.is_(True)
        )
    ).all()
    for row_id, recipients in rows:
        if recipients:
            bind.execute(
                activities.update()
                .where(activities.c.id == row_id)
                .values(automatic_to=str(recipients[0]).strip().lower()[:400])
            )


def downgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.drop_index("ix_activities_automatic_to")
        batch.drop_column("automatic_to")
