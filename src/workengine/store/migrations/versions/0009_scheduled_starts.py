"""Scheduled starts: a task created with `not_before` is not ready before that time.

Such a task is BLOCKED until then (docs/selection.md, "Scheduled starts"). Its `retry_at` is
the time, set only once its dependencies are met, so the retry scheduler that releases
`retry_after` releases it too (tasks_retry_idx), and the previous release's scheduler, which
knows nothing of dependencies in a retry, never releases a task still waiting on one.

Expand only (docs/development.md, "Migrations and rolling upgrades"): one nullable column on
`tasks`, which the previous release (8bd721f) survives (`row_type_changed`). Its replicas create
no scheduled task; while they run, one of their completions that releases a scheduled task's
last dependency moves it to TODO at once (they do not read `not_before`).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD COLUMN not_before timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks DROP COLUMN not_before")
