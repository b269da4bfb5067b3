"""Index mixed.amount (not unique) and add mixed.status with a default."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "mixed",
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    )
    op.create_index("ix_mixed_amount", "mixed", ["amount"])


def downgrade() -> None:
    op.drop_index("ix_mixed_amount", table_name="mixed")
    op.drop_column("mixed", "status")
