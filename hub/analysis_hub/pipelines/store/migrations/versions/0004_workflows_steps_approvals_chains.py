"""workflows: a version's steps, each run's step runs, repairs, approval gates, chained triggers

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("steps", sa.JSON(), nullable=True))
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(sa.Column("after_pipeline", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("after_on", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("subscribers", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("repair_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("upstream_run", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_runs_pipeline_id_upstream_run", ["pipeline_id", "upstream_run"])
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error_cell", sa.Integer(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("reused_from", sa.Integer(), nullable=True),
        sa.Column("approvers", sa.String(length=255), nullable=True),
        sa.Column("deadline", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step"),
    )


def downgrade():
    op.drop_table("step_runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_pipeline_id_upstream_run", type_="unique")
        batch.drop_column("upstream_run")
        batch.drop_column("repair_of")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("subscribers")
        batch.drop_column("after_on")
        batch.drop_column("after_pipeline")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("steps")
