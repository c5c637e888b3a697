"""A task without a due time sorts last by a time Python can hold, not 'infinity'.

`tasks.due_key` (the selection index's deadline column) was COALESCE(due_at, 'infinity').
psycopg cannot load ±infinity into a datetime, so every timestamptz column of every row went
through a loader written in Python to catch it, which also keeps psycopg from loading rows on
its C path: 9 % of the server's instructions per task lifecycle (counted with callgrind). Now it is
COALESCE(due_at, '9999-12-30 00:00:00+00'), `domain.scoring.UNDATED`, which psycopg's own loader
reads in any session time zone (datetime.max would not: read east of UTC it is in the year
10000). Due times at or after it are refused (INVALID_ARGUMENT), so undated tasks still sort
after every dated one, as selection orders them.

A generated column's expression cannot be altered on PostgreSQL 15, so the column and its index
are made again: the table is rewritten, under an exclusive lock, once.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _due_key(none_sorts_as: str) -> str:
    return f"""
        ALTER TABLE tasks DROP COLUMN due_key;
        ALTER TABLE tasks ADD COLUMN due_key timestamptz NOT NULL
            GENERATED ALWAYS AS (COALESCE(due_at, '{none_sorts_as}'::timestamptz)) STORED;
        -- Selection probes one range of this index per (priority, deadline bucket).
        CREATE INDEX tasks_ready_idx ON tasks (orchestrator_id, priority, due_key, created_at, id)
            WHERE status = 'TODO';
        """


def upgrade() -> None:
    op.execute(_due_key("9999-12-30 00:00:00+00"))  # domain.scoring.UNDATED


def downgrade() -> None:
    op.execute(_due_key("infinity"))
