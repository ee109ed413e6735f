"""runs started by the schedule have trigger cron, the deployment's own word for it

Revision ID: 0002
Revises: 0001

Before this revision a deployment's trigger was `cron` while the runs its
schedule started said `schedule`; one vocabulary now (`triggers.py`). Audit
events keep what they recorded: the trail is only ever added to.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("trigger", sa.String(16)))


def upgrade():
    op.execute(runs.update().where(runs.c.trigger == "schedule").values(trigger="cron"))


def downgrade():
    # Exact: before 0002 no run had trigger `cron`, so every `cron` run was `schedule`.
    op.execute(runs.update().where(runs.c.trigger == "cron").values(trigger="schedule"))
