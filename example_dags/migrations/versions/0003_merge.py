"""Merge the two branches and index book titles."""

from alembic import op

revision = "0003"
down_revision = ("0002a", "0002b")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_book_title", "book", ["title"])


def downgrade() -> None:
    op.drop_index("ix_book_title", table_name="book")
