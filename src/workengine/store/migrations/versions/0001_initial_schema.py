"""Initial schema: orchestrators, tasks with dependency counters, the ready index, events.

Readiness is state, not a query: `unmet_dependency_count` is set at creation and decremented
when a dependency reaches DONE or CANCELLED, so selection reads TODO rows from one partial
index and never walks dependencies.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


SCHEMA = """
        CREATE TABLE orchestrators (
            id                text PRIMARY KEY,
            display_name      text NOT NULL,
            role              text NOT NULL DEFAULT '',
            discipline        text NOT NULL DEFAULT '',
            capabilities      text[] NOT NULL DEFAULT '{}',
            daemon_endpoint   text NOT NULL DEFAULT '',
            status            text NOT NULL
                              CHECK (status IN ('ONLINE', 'BUSY', 'AWAY', 'OFFLINE')),
            timezone          text NOT NULL DEFAULT 'UTC',
            charter           jsonb NOT NULL DEFAULT '{}',
            created_at        timestamptz NOT NULL DEFAULT now(),
            updated_at        timestamptz NOT NULL DEFAULT now(),
            last_heartbeat_at timestamptz
        );
        CREATE INDEX orchestrators_created_idx ON orchestrators (created_at, id);

        CREATE TABLE tasks (
            id                     text PRIMARY KEY,
            orchestrator_id        text NOT NULL REFERENCES orchestrators (id),
            workspace_id           text NOT NULL,
            channel_id             text NOT NULL DEFAULT '',
            title                  text NOT NULL,
            description            text NOT NULL DEFAULT '',
            -- 1 LOW .. 4 CRITICAL, so ORDER BY priority DESC is "most urgent first".
            priority               smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
            status                 text NOT NULL CHECK (status IN
                                   ('TODO', 'IN_PROGRESS', 'BLOCKED', 'DONE', 'FAILED', 'CANCELLED')),
            status_reason          text NOT NULL DEFAULT '',
            due_at                 timestamptz,
            -- A missing due time sorts last and falls in the "later" bucket of every range.
            due_key                timestamptz NOT NULL
                                   GENERATED ALWAYS AS (COALESCE(due_at, 'infinity'::timestamptz)) STORED,
            tags                   text[] NOT NULL DEFAULT '{}',
            depends_on             text[] NOT NULL DEFAULT '{}',
            unmet_dependency_count integer NOT NULL DEFAULT 0 CHECK (unmet_dependency_count >= 0),
            metadata               jsonb NOT NULL DEFAULT '{}',
            progress               smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
            progress_message       text NOT NULL DEFAULT '',
            attempt                integer NOT NULL DEFAULT 0,
            result                 jsonb,
            -- Hash of the accepted CompleteTask request: an identical retry is answered, a
            -- different one refused.
            completion_fingerprint text,
            created_at             timestamptz NOT NULL DEFAULT now(),
            updated_at             timestamptz NOT NULL DEFAULT now(),
            started_at             timestamptz,
            completed_at           timestamptz
        );
        -- Selection probes one range of this index per (priority, deadline bucket).
        CREATE INDEX tasks_ready_idx ON tasks (orchestrator_id, priority, due_key, created_at, id)
            WHERE status = 'TODO';
        CREATE INDEX tasks_orchestrator_created_idx ON tasks (orchestrator_id, created_at, id);
        CREATE INDEX tasks_workspace_created_idx ON tasks (workspace_id, created_at, id);
        CREATE INDEX tasks_created_idx ON tasks (created_at, id);

        CREATE TABLE task_dependencies (
            task_id       text NOT NULL REFERENCES tasks (id),
            depends_on_id text NOT NULL REFERENCES tasks (id),
            PRIMARY KEY (task_id, depends_on_id)
        );
        -- Completion finds the dependents of a task through this index.
        CREATE INDEX task_dependencies_depends_on_idx ON task_dependencies (depends_on_id);

        CREATE TABLE task_events (
            cursor          bigserial PRIMARY KEY,
            task_id         text NOT NULL,
            orchestrator_id text NOT NULL,
            workspace_id    text NOT NULL,
            kind            text NOT NULL,
            -- The task's status right after the change, so a replay shows it as it was.
            status          text NOT NULL,
            attempt         integer NOT NULL DEFAULT 0,
            progress        smallint NOT NULL DEFAULT 0,
            message         text NOT NULL DEFAULT '',
            metadata        jsonb NOT NULL DEFAULT '{}',
            occurred_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX task_events_task_idx ON task_events (task_id, cursor);
        CREATE INDEX task_events_orchestrator_idx ON task_events (orchestrator_id, cursor);
        CREATE INDEX task_events_workspace_idx ON task_events (workspace_id, cursor);
        """


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE task_events, task_dependencies, tasks, orchestrators")
