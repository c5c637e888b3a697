"""Operations: a task's trace context, and an index to count BLOCKED tasks.

`task_trace_contexts` holds, per task, the W3C trace context (`traceparent`, and `tracestate`
when there is one) of the call that created it, so the attempt that runs it, in another process,
continues the creator's trace. A task whose creator sent none has no row: read it with a LEFT
JOIN, and write it in the transaction that creates the task.

It is a table of its own, not a column of `tasks`, for the previous release's replicas, which
run while this migration does (docs/development.md, "Migrations and rolling upgrades"): they
hold prepared statements that return `t.*`, and a column added to `tasks` changes that row
type under them, which PostgreSQL refuses ("cached plan must not change result type"): each of
their pooled connections would fail a call with INTERNAL. tests/e2e/test_rolling_upgrade.py
caught it.

`tasks_blocked_idx` lets the metrics' periodic count of BLOCKED tasks read an index instead of
the whole table (TODO and IN_PROGRESS already have their partial indexes). It only holds BLOCKED
rows, so creation and completion do not write it.

Both are additive: the previous release runs unchanged beside this one, during and after the
migration.

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
        CREATE TABLE task_trace_contexts (
            task_id       text PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
            trace_context jsonb NOT NULL
        );
        CREATE INDEX tasks_blocked_idx ON tasks (orchestrator_id) WHERE status = 'BLOCKED';
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX tasks_blocked_idx; DROP TABLE task_trace_contexts;")
