-- Execution statistics: the rollup GetExecutionStats reads, and the fold that keeps it small.

-- name: execution_rollup
-- GetExecutionStats' numbers for the tasks created in [start, end), from the execution_rollup
-- table (migration 0005): the range's whole UTC days from the day rows, its other whole hours
-- from the hour rows, plus the deltas of those hours not folded yet, plus the tasks of the partial hours
-- at its edges read from `tasks` and bucketed the same way. O(buckets), not O(tasks).
-- Rows: bucket -1 counts tasks per (status, priority); bucket >= 0 counts DONE completion
-- times in that bucket (priority 0), with their sum in `seconds`.
WITH range AS (
    SELECT s, e, hs, he,
           CASE WHEN date_trunc('day', hs, 'UTC') = hs THEN hs
                ELSE date_trunc('day', hs, 'UTC') + interval '1 day' END AS ds,
           date_trunc('day', he, 'UTC') AS de
    FROM (SELECT s, e,
                 CASE WHEN date_trunc('hour', s, 'UTC') = s THEN s
                      ELSE date_trunc('hour', s, 'UTC') + interval '1 hour' END AS hs,
                 date_trunc('hour', e, 'UTC') AS he
          FROM (SELECT COALESCE(CAST(:start_time AS timestamptz), '-infinity') AS s,
                       COALESCE(CAST(:end_time AS timestamptz), 'infinity') AS e) AS given) AS hours
), parts AS (
    SELECT r.status, r.priority, r.bucket, r.tasks, r.seconds
    FROM range JOIN execution_rollup r
      ON r.orchestrator_id = :orchestrator_id AND r.hours = 24
     AND r.period_start >= range.ds AND r.period_start < range.de
    UNION ALL
    SELECT r.status, r.priority, r.bucket, r.tasks, r.seconds
    FROM range JOIN execution_rollup r
      ON r.orchestrator_id = :orchestrator_id AND r.hours = 1
     AND r.period_start >= range.hs AND r.period_start < range.he
     AND NOT (r.period_start >= range.ds AND r.period_start < range.de)
    UNION ALL
    SELECT d.status, d.priority, d.bucket, d.tasks, d.seconds
    FROM range JOIN execution_rollup_deltas d
      ON d.orchestrator_id = :orchestrator_id AND d.hour >= range.hs AND d.hour < range.he
    UNION ALL
    SELECT c.status, c.priority, c.bucket, c.tasks, c.seconds
    FROM range JOIN tasks t
      ON t.orchestrator_id = :orchestrator_id AND t.created_at >= range.s AND t.created_at < LEAST(range.hs, range.e)
    CROSS JOIN LATERAL execution_contributions(t, 1) AS c
    UNION ALL
    SELECT c.status, c.priority, c.bucket, c.tasks, c.seconds
    FROM range JOIN tasks t
      ON t.orchestrator_id = :orchestrator_id AND t.created_at >= GREATEST(range.s, range.hs, range.he)
     AND t.created_at < range.e
    CROSS JOIN LATERAL execution_contributions(t, 1) AS c
)
SELECT status, priority, bucket, sum(tasks)::bigint AS tasks, sum(seconds) AS seconds
FROM parts
GROUP BY status, priority, bucket
HAVING sum(tasks) <> 0;

-- name: try_lock_folding
-- One folder at a time across every process; the others skip their turn.
SELECT pg_try_advisory_xact_lock(hashtext('workengine.fold_execution_deltas')) AS locked;

-- name: fold_execution_deltas
-- Moves the committed deltas into the hour and day rows of execution_rollup. Readers see the
-- deltas before this commits and the rollup rows after, never both and never neither.
WITH moved AS (
    DELETE FROM execution_rollup_deltas RETURNING *
), hourly AS (
    SELECT orchestrator_id, hour, status, priority, bucket, sum(tasks) AS tasks, sum(seconds) AS seconds
    FROM moved GROUP BY orchestrator_id, hour, status, priority, bucket
), sums AS (
    SELECT orchestrator_id, 1 AS hours, hour AS period_start, status, priority, bucket, tasks, seconds
    FROM hourly
    UNION ALL
    SELECT orchestrator_id, 24, date_trunc('day', hour, 'UTC'), status, priority, bucket, sum(tasks), sum(seconds)
    FROM hourly GROUP BY orchestrator_id, date_trunc('day', hour, 'UTC'), status, priority, bucket
), folded AS (
    INSERT INTO execution_rollup AS r (orchestrator_id, hours, period_start, status, priority, bucket, tasks, seconds)
    SELECT * FROM sums WHERE tasks <> 0 OR seconds <> 0
    ON CONFLICT (orchestrator_id, hours, period_start, status, priority, bucket)
    DO UPDATE SET tasks = r.tasks + excluded.tasks, seconds = r.seconds + excluded.seconds
)
SELECT count(*) AS deltas FROM moved;
