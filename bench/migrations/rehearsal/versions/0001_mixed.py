"""Dataset (a)'s ``mixed`` table, as bench/datasets.py creates it (the benchmark stamps it)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mixed",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column(
            "created",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
            .with_variant(postgresql.TIMESTAMP(precision=6), "postgresql"),
            nullable=False,
        ),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("amount", sa.Numeric(12, 4), nullable=False),
        sa.Column("doc", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.Column("token", sa.LargeBinary().with_variant(mysql.VARBINARY(64), "mysql", "mariadb")),
        sa.Column("flag", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mixed")
