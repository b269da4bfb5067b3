"""Create the book table (branch a)."""

import sqlalchemy as sa
from alembic import op

revision = "0002a"
down_revision = "0001"
branch_labels = ("books",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "book",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("author_id", sa.Integer, sa.ForeignKey("author.id"), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("book")
