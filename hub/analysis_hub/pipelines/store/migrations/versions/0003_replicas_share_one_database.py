"""replicas share one database: a run's replica, one run per fire time, heartbeats

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("replica", sa.String(length=255), nullable=True))
        batch.create_unique_constraint("uq_runs_pipeline_id_scheduled_for", ["pipeline_id", "scheduled_for"])
    op.create_table(
        "replicas",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade():
    op.drop_table("replicas")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_pipeline_id_scheduled_for", type_="unique")
        batch.drop_column("replica")
