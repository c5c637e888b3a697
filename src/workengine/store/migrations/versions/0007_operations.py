"""Operations: a task's trace context, and an index to count BLOCKED tasks.

`trace_context` holds the W3C trace context (`traceparent`, and `tracestate` when there is one)
of the call that created the task, so the attempt that runs it, in another process, continues
the creator's trace. NULL when the creator sent none.

`tasks_blocked_idx` lets the metrics' periodic count of BLOCKED tasks read an index instead of
the whole table (TODO and IN_PROGRESS already have their partial indexes). It only holds BLOCKED
rows, so creation and completion do not write it.

Both are additive: the previous release runs unchanged beside this one on the migrated schema
(docs/development.md, "Migrations and rolling upgrades").

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE tasks ADD COLUMN trace_context jsonb;
        CREATE INDEX tasks_blocked_idx ON tasks (orchestrator_id) WHERE status = 'BLOCKED';
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX tasks_blocked_idx; ALTER TABLE tasks DROP COLUMN trace_context;")
