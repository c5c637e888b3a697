-- What an operator watches: the queue's size and age, and the schema's version.

-- name: queue_state
-- Tasks per unfinished status and since when the oldest ready task has been ready, cluster-wide.
-- Each reads only the rows of its status, through its partial index (tasks_ready_idx,
-- tasks_lease_idx, tasks_blocked_idx), never the finished ones: about 30 ms per 100,000 ready
-- tasks here, once per refresh and replica. DONE, FAILED and CANCELLED are not
-- counted here: they only grow, and the metrics count them as they happen.
SELECT ready.todo, ready.oldest_ready_since,
       (SELECT count(*) FROM tasks WHERE status = 'IN_PROGRESS') AS in_progress,
       (SELECT count(*) FROM tasks WHERE status = 'BLOCKED') AS blocked,
       now() AS read_at
-- One pass over the TODO rows for both (the oldest's updated_at is not in tasks_ready_idx).
FROM (SELECT count(*) AS todo, min(updated_at) AS oldest_ready_since FROM tasks WHERE status = 'TODO') AS ready;

-- name: schema_revision
-- The Alembic revision the database is at (no row before the first migration finished; the
-- table itself is missing before it started).
SELECT version_num AS revision FROM alembic_version LIMIT 1;
