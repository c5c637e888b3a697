"""A task without a due time sorts last by the latest time Python holds, not 'infinity'.

`tasks.due_key` (the selection index's deadline column) was COALESCE(due_at, 'infinity').
psycopg cannot load ±infinity into a datetime, so every timestamptz column of every row went
through a loader written in Python to catch it, which also keeps psycopg from loading rows on
its C path: 9 % of the server's instructions per task lifecycle (issue 6, callgrind). Now it is
COALESCE(due_at, '9999-12-31 23:59:59.999999+00'), Python's datetime.max, which psycopg's own
loader reads. The order is the one `domain.scoring.sort_key` already defines (datetime.max for
"none"); only a task due at that very microsecond now ties with the undated ones, and the later
tie-breaks (priority, age, id) order them.

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
    op.execute(_due_key("9999-12-31 23:59:59.999999+00"))


def downgrade() -> None:
    op.execute(_due_key("infinity"))
