"""A first revision that changes schema and data, then fails: on PostgreSQL its transaction
rolls back completely and the database is as it was before the upgrade."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("author", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("UPDATE note SET body = 'half-migrated'")
    raise RuntimeError("0001 fails on purpose, inside its transaction")


def downgrade() -> None:
    op.drop_table("author")
