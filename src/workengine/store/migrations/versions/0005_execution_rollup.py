"""Execution statistics from a rollup instead of a scan of every task.

GetExecutionStats read every task of the orchestrator in the range and sorted their completion
times (1.5 s for 1,000,000 tasks). Now each task contributes to `execution_rollup`, per
orchestrator and UTC hour (and, again, UTC day) of its created_at: one count per (status,
priority), and for DONE tasks one count in a log-spaced completion-time bucket (16 per
doubling, from 1 ms) with the sum of their seconds. A reader adds up O(buckets) rows for the
whole hours and days of its range and scans the tasks of the partial edge hours only.

Triggers on `tasks` keep it transactional without touching the statements that change tasks:
every change of a counted column (status, priority, created_at, started_at, completed_at,
orchestrator_id) appends the old row's contribution negated and the new row's to
`execution_rollup_deltas`. Appending never waits on another transaction (an upsert of the
shared counter rows would serialise every claim and completion of an orchestrator on them);
the engine folds the deltas into the rollup in the background (`fold_execution_deltas`), and
readers add the deltas not folded yet, so a fold never changes an answer. A task that finishes
more than once (FAILED, retried, DONE) counts once, with its current status and duration.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


ROLLUP = """
        CREATE TABLE execution_rollup (
            orchestrator_id text NOT NULL,
            hours           smallint NOT NULL CHECK (hours IN (1, 24)),  -- an hour's or a day's row
            period_start    timestamptz NOT NULL,                        -- UTC hour or day of created_at
            status          text NOT NULL,
            priority        smallint NOT NULL,  -- 0 on bucket rows
            bucket          smallint NOT NULL,  -- -1: a count per (status, priority); else a DONE time bucket
            tasks           bigint NOT NULL,
            seconds         double precision NOT NULL,  -- sum of the bucket's completion times
            PRIMARY KEY (orchestrator_id, hours, period_start, status, priority, bucket)
        );
        CREATE TABLE execution_rollup_deltas (
            orchestrator_id text NOT NULL,
            hour            timestamptz NOT NULL,
            status          text NOT NULL,
            priority        smallint NOT NULL,
            bucket          smallint NOT NULL,
            tasks           bigint NOT NULL,
            seconds         double precision NOT NULL
        );

        -- Bucket b >= 1 holds completion times in [1 ms * 2^((b-1)/16), 1 ms * 2^(b/16));
        -- bucket 0 those under 1 ms.
        CREATE FUNCTION execution_time_bucket(seconds double precision) RETURNS smallint
        LANGUAGE sql IMMUTABLE STRICT AS $$
            SELECT (CASE WHEN seconds < 0.001 THEN 0
                         ELSE 1 + floor(16 * ln(seconds * 1000) / ln(2)) END)::smallint
        $$;

        -- What one task adds to the rollup (sign 1) or takes away (sign -1). One VALUES list,
        -- not a UNION: PostgreSQL 15 cannot plan an inlined UNION over a whole-row argument.
        CREATE FUNCTION execution_contributions(t tasks, sign integer)
        RETURNS TABLE (orchestrator_id text, hour timestamptz, status text, priority smallint,
                       bucket smallint, tasks bigint, seconds double precision)
        LANGUAGE sql STABLE AS $$
            SELECT t.orchestrator_id, date_trunc('hour', t.created_at, 'UTC'), v.status, v.priority,
                   v.bucket, sign::bigint, sign * v.seconds
            FROM (VALUES (t.status, t.priority, -1::smallint, 0::double precision),
                         ('DONE', 0::smallint,
                          execution_time_bucket(
                              extract(epoch FROM t.completed_at - t.started_at)::double precision),
                          extract(epoch FROM t.completed_at - t.started_at)::double precision))
                 AS v(status, priority, bucket, seconds)
            WHERE v.bucket = -1 OR (t.status = 'DONE' AND v.bucket IS NOT NULL)
        $$;

        CREATE FUNCTION execution_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO execution_rollup_deltas
            SELECT * FROM execution_contributions(OLD, -1)
            UNION ALL
            SELECT * FROM execution_contributions(NEW, 1);
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER tasks_execution_rollup_update
            AFTER UPDATE OF status, priority, created_at, started_at, completed_at, orchestrator_id ON tasks
            FOR EACH ROW
            WHEN ((OLD.status, OLD.priority, OLD.created_at, OLD.started_at, OLD.completed_at,
                   OLD.orchestrator_id)
                  IS DISTINCT FROM
                  (NEW.status, NEW.priority, NEW.created_at, NEW.started_at, NEW.completed_at,
                   NEW.orchestrator_id))
            EXECUTE FUNCTION execution_rollup_on_update();

        -- Inserts and deletes per statement, so a set-based insert of many tasks appends its
        -- contributions already summed.
        CREATE FUNCTION execution_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO execution_rollup_deltas
            SELECT c.orchestrator_id, c.hour, c.status, c.priority, c.bucket, sum(c.tasks), sum(c.seconds)
            FROM inserted_tasks i, execution_contributions(i::tasks, 1) c
            GROUP BY c.orchestrator_id, c.hour, c.status, c.priority, c.bucket;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER tasks_execution_rollup_insert
            AFTER INSERT ON tasks REFERENCING NEW TABLE AS inserted_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION execution_rollup_on_insert();

        CREATE FUNCTION execution_rollup_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO execution_rollup_deltas
            SELECT c.orchestrator_id, c.hour, c.status, c.priority, c.bucket, sum(c.tasks), sum(c.seconds)
            FROM deleted_tasks d, execution_contributions(d::tasks, -1) c
            GROUP BY c.orchestrator_id, c.hour, c.status, c.priority, c.bucket;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER tasks_execution_rollup_delete
            AFTER DELETE ON tasks REFERENCING OLD TABLE AS deleted_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION execution_rollup_on_delete();

        CREATE FUNCTION execution_rollup_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE execution_rollup, execution_rollup_deltas;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER tasks_execution_rollup_truncate
            AFTER TRUNCATE ON tasks FOR EACH STATEMENT EXECUTE FUNCTION execution_rollup_on_truncate();

        -- Back-fill: the triggers above exist from here on in this transaction, and creating
        -- them locked out concurrent writers, so every task is counted exactly once.
        WITH hourly AS (
            SELECT c.orchestrator_id, c.hour, c.status, c.priority, c.bucket,
                   sum(c.tasks) AS tasks, sum(c.seconds) AS seconds
            FROM tasks t, execution_contributions(t, 1) c
            GROUP BY c.orchestrator_id, c.hour, c.status, c.priority, c.bucket
        )
        INSERT INTO execution_rollup
        SELECT orchestrator_id, 1, hour, status, priority, bucket, tasks, seconds FROM hourly
        UNION ALL
        SELECT orchestrator_id, 24, date_trunc('day', hour, 'UTC'), status, priority, bucket,
               sum(tasks), sum(seconds)
        FROM hourly GROUP BY orchestrator_id, date_trunc('day', hour, 'UTC'), status, priority, bucket;
        """


def upgrade() -> None:
    op.execute(ROLLUP)


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER tasks_execution_rollup_update ON tasks;
        DROP TRIGGER tasks_execution_rollup_insert ON tasks;
        DROP TRIGGER tasks_execution_rollup_delete ON tasks;
        DROP TRIGGER tasks_execution_rollup_truncate ON tasks;
        DROP FUNCTION execution_rollup_on_update(), execution_rollup_on_insert(),
                      execution_rollup_on_delete(), execution_rollup_on_truncate();
        DROP FUNCTION execution_contributions(tasks, integer), execution_time_bucket(double precision);
        DROP TABLE execution_rollup, execution_rollup_deltas;
        """
    )
