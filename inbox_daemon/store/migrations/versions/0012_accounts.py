"""cases.account, cases.entitlement_exhausted and entitlement_uses: customers' entitlements

A case records the customer's account (rules.yaml ``accounts``) and whether the account's
allowance was used up when it was created; each unit an entitled case takes is one row of
``entitlement_uses`` (one per case at most), given back when the case is cancelled. Cases made
before keep no account.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch would copy the cases table, which the rows
    # referring to it forbid.
    op.add_column("cases", sa.Column("account", sa.String(length=100), nullable=True))
    op.add_column(
        "cases",
        sa.Column(
            "entitlement_exhausted", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
    )
    op.create_index("ix_cases_account", "cases", ["account"], unique=False)
    op.create_table(
        "entitlement_uses",
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("entitlement", sa.String(length=100), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_entitlement_uses_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_entitlement_uses")),
        sa.UniqueConstraint(
            "account", "entitlement", "period", "seq", name="uq_entitlement_uses_unit"
        ),
    )


def downgrade() -> None:
    op.drop_table("entitlement_uses")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_account")
        batch.drop_column("entitlement_exhausted")
        batch.drop_column("account")
