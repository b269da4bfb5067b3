"""Add author.email (branch b)."""

import sqlalchemy as sa
from alembic import op

revision = "0002b"
down_revision = "0001"
branch_labels = ("emails",)
depends_on = None


def upgrade() -> None:
    op.add_column("author", sa.Column("email", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("author") as batch:
        batch.drop_column("email")
