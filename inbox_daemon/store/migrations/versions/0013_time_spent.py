"""activities.spent_minutes and entitlement_hours: an allowance of support hours

An agent records the time an activity took (a call, a task, a note); an entitlement whose
allowance is counted in hours is charged the time spent on a case when it is resolved, one row
of ``entitlement_hours`` per case, given back when the case is reactivated. Existing
activities record no time.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode copies the table, which SQLite refuses while rows refer to it.
    op.add_column("activities", sa.Column("spent_minutes", sa.Integer(), nullable=True))
    op.create_table(
        "entitlement_hours",
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("entitlement", sa.String(length=100), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_entitlement_hours_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_entitlement_hours")),
    )
    op.create_index(
        "ix_entitlement_hours_period",
        "entitlement_hours",
        ["account", "entitlement", "period"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_entitlement_hours_period", table_name="entitlement_hours")
    op.drop_table("entitlement_hours")
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("spent_minutes")
