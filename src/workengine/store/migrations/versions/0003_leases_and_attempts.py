"""Leases, attempt budgets and history, retry times, idempotency keys.

A started task holds a lease (`lease_expires_at`); a reaper returns tasks whose lease ran
out to TODO, or to FAILED once `lease_expiry_count + failure_count` reaches `max_attempts`.
`task_attempts` keeps who ran each attempt, when, and how it ended. `retry_at` brings a task
a daemon reported BLOCKED back to TODO by itself. `idempotency_key` makes CreateTask safe to
retry: unique per orchestrator, with the request's fingerprint to tell a retry from a
different request.

Tasks already IN_PROGRESS get a 5-minute lease from the upgrade, and a history row for their
current attempt.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE tasks
            ADD COLUMN max_attempts          integer NOT NULL DEFAULT 3
                                             CHECK (max_attempts BETWEEN 1 AND 100),
            ADD COLUMN lease_seconds         integer CHECK (lease_seconds > 0),
            ADD COLUMN attempt_lease_seconds integer CHECK (attempt_lease_seconds > 0),
            ADD COLUMN lease_expires_at      timestamptz,
            ADD COLUMN lease_expiry_count    integer NOT NULL DEFAULT 0,
            ADD COLUMN failure_count         integer NOT NULL DEFAULT 0,
            ADD COLUMN retry_at              timestamptz,
            ADD COLUMN idempotency_key       text,
            ADD COLUMN request_fingerprint   text;

        UPDATE tasks SET lease_expires_at = now() + interval '5 minutes', attempt_lease_seconds = 300
        WHERE status = 'IN_PROGRESS';
        -- Nothing runs without a lease: a task can never be stuck IN_PROGRESS.
        ALTER TABLE tasks ADD CONSTRAINT tasks_running_has_lease CHECK (
            status <> 'IN_PROGRESS' OR (lease_expires_at IS NOT NULL AND attempt_lease_seconds IS NOT NULL));

        -- The reaper and the retry scheduler each probe only the rows that are due.
        CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'IN_PROGRESS';
        CREATE INDEX tasks_retry_idx ON tasks (retry_at) WHERE status = 'BLOCKED' AND retry_at IS NOT NULL;
        CREATE UNIQUE INDEX tasks_idempotency_idx ON tasks (orchestrator_id, idempotency_key)
            WHERE idempotency_key IS NOT NULL;

        CREATE TABLE task_attempts (
            task_id    text NOT NULL REFERENCES tasks (id),
            attempt    integer NOT NULL,
            identity   text NOT NULL DEFAULT '',
            started_at timestamptz NOT NULL,
            ended_at   timestamptz,
            outcome    text NOT NULL DEFAULT 'RUNNING' CHECK (outcome IN
                       ('RUNNING', 'COMPLETED', 'FAILED', 'BLOCKED', 'LEASE_EXPIRED', 'CANCELLED')),
            reason     text NOT NULL DEFAULT '',
            PRIMARY KEY (task_id, attempt)
        );

        INSERT INTO task_attempts (task_id, attempt, started_at)
        SELECT id, attempt, COALESCE(started_at, now()) FROM tasks WHERE status = 'IN_PROGRESS';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE task_attempts;
        DROP INDEX tasks_idempotency_idx;
        DROP INDEX tasks_retry_idx;
        DROP INDEX tasks_lease_idx;
        ALTER TABLE tasks
            DROP CONSTRAINT tasks_running_has_lease,
            DROP COLUMN max_attempts, DROP COLUMN lease_seconds, DROP COLUMN attempt_lease_seconds,
            DROP COLUMN lease_expires_at, DROP COLUMN lease_expiry_count, DROP COLUMN failure_count,
            DROP COLUMN retry_at, DROP COLUMN idempotency_key, DROP COLUMN request_fingerprint;
        """
    )
