-- What an operator watches: the queue's size and age, and the schema's version.

-- name: queue_state
-- Tasks per unfinished status and the oldest ready task's creation, cluster-wide. Each count
-- reads the status's partial index (tasks_ready_idx, tasks_lease_idx, tasks_blocked_idx), so it
-- costs the tasks in that status, never the finished ones. DONE, FAILED and CANCELLED are not
-- counted here: they only grow, and the metrics count them as they happen.
SELECT
    (SELECT count(*) FROM tasks WHERE status = 'TODO') AS todo,
    (SELECT count(*) FROM tasks WHERE status = 'IN_PROGRESS') AS in_progress,
    (SELECT count(*) FROM tasks WHERE status = 'BLOCKED') AS blocked,
    (SELECT min(updated_at) FROM tasks WHERE status = 'TODO') AS oldest_ready_since,
    now() AS read_at;

-- name: schema_revision
-- The Alembic revision the database is at (no row before the first migration finished; the
-- table itself is missing before it started).
SELECT version_num AS revision FROM alembic_version LIMIT 1;
