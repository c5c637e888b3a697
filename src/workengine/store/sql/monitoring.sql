-- What a person watching the engine reads (the dashboard): counts per orchestrator, the running
-- tasks, recent throughput, a task's history and its dependents. Reads only; each is bounded
-- by an index and a LIMIT, never a walk over every task.

-- name: status_counts
-- The tasks of each of :ids per status, now, from the execution rollup (migration 0005): its
-- day rows hold every task once (whatever hour rows also exist), the deltas what the fold has
-- not moved yet. O(days x statuses x priorities) per orchestrator, not O(tasks).
SELECT orchestrator_id, status, sum(tasks)::bigint AS tasks
FROM (SELECT orchestrator_id, status, tasks FROM execution_rollup
      WHERE orchestrator_id = ANY(CAST(:ids AS text[])) AND hours = 24 AND bucket = -1
      UNION ALL
      SELECT orchestrator_id, status, tasks FROM execution_rollup_deltas
      WHERE orchestrator_id = ANY(CAST(:ids AS text[])) AND bucket = -1) AS counted
GROUP BY orchestrator_id, status
HAVING sum(tasks) <> 0;

-- name: running_tasks
-- The running tasks, longest-running first, through their partial index (tasks_lease_idx).
SELECT * FROM tasks WHERE status = 'IN_PROGRESS' ORDER BY started_at, id LIMIT :limit;

-- name: finished_per_minute
-- Tasks finished per minute since :minutes ago (completed; failed, also by a lease lost with no
-- attempt left), counted from the newest :max_rows events, read backwards along the log's
-- primary key. No index on time exists (it would cost every write), so the read is bounded by
-- rows instead, and every row says how far back it reached (`oldest`, `scanned`): when the
-- window held more events than :max_rows, its older minutes are not counted.
WITH recent AS MATERIALIZED (
    SELECT kind, status, occurred_at FROM task_events ORDER BY position DESC LIMIT :max_rows
), reach AS (
    SELECT now() - make_interval(mins => CAST(:minutes AS integer)) AS since,
           (SELECT min(occurred_at) FROM recent) AS oldest, (SELECT count(*) FROM recent) AS scanned
)
SELECT reach.since, reach.oldest, reach.scanned, counts.*
FROM reach LEFT JOIN LATERAL (
    SELECT date_trunc('minute', occurred_at) AS minute,
           count(*) FILTER (WHERE kind = 'COMPLETED') AS completed,
           count(*) FILTER (WHERE kind = 'FAILED' OR (kind = 'LEASE_EXPIRED' AND status = 'FAILED')) AS failed
    FROM recent
    WHERE occurred_at >= reach.since AND kind IN ('COMPLETED', 'FAILED', 'LEASE_EXPIRED')
    GROUP BY 1
) AS counts ON true
ORDER BY counts.minute;

-- name: task_events_before
-- A task's events before position :before (0: from the newest), newest first, below the
-- watermark, each with the task as it is now (see event_page), through task_events_task_idx.
SELECT e.position AS event_position, e.kind AS event_kind, e.status AS event_status,
       e.attempt AS event_attempt, e.progress AS event_progress, e.message AS event_message,
       e.metadata AS event_metadata, e.occurred_at AS event_time,
       e.estimated_completion_at AS event_estimated_completion_at, t.*
FROM task_events e JOIN tasks t ON t.id = e.task_id
WHERE e.task_id = :task_id AND (CAST(:before AS bigint) = 0 OR e.position < :before)
  AND e.position < {{watermark}}
ORDER BY e.position DESC
LIMIT :limit;

-- name: task_dependents
-- The tasks that depend on :task_id (task_dependencies_depends_on_idx), first :limit by id, and
-- how many there are in all.
SELECT t.id, t.title, t.status, count(*) OVER () AS total
FROM task_dependencies d JOIN tasks t ON t.id = d.task_id
WHERE d.depends_on_id = :task_id
ORDER BY t.id
LIMIT :limit;
