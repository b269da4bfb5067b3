"""A migration that fails on purpose, after changing the schema (for the demo and tests)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("book", sa.Column("isbn", sa.String(20), nullable=True))
    op.execute("UPDATE author SET name = 'half-migrated'")
    raise RuntimeError("0004 fails on purpose: the DAG must restore the backup")


def downgrade() -> None:
    with op.batch_alter_table("book") as batch:
        batch.drop_column("isbn")
