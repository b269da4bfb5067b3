"""Authors' names become unique: passes on an empty database, fails where production holds
two authors of the same name (the rehearsal must stop the run on the copy)."""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ux_author_name", "author", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_author_name", table_name="author")
