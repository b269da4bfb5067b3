"""A slow revision: it sleeps on the scratch copy so a test can kill the rehearsal mid-run."""

import time

import sqlalchemy as sa
from alembic import op

revision = "0002b"
down_revision = "0002a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("author", sa.Column("email", sa.String(320), nullable=True))
    time.sleep(60)


def downgrade() -> None:
    with op.batch_alter_table("author") as batch:
        batch.drop_column("email")
