-- What a task's context recalls of past executions (docs/history.md): its history and the
-- samples of its estimate. Every read is a bounded walk of an index (migration 0008), newest
-- first, so the cost stays flat however long the history grows.

-- include: before
-- The window's end, a range of the index rather than a filter (NULL: now, and later).
(a.ended_at < COALESCE(CAST(:before AS timestamptz), 'infinity'))

-- include: verdict
-- An attempt of `a` that ended with a verdict on the work, and is grouped: the rows of the
-- similarity indexes (their predicate, written the same so the planner matches it).
(a.outcome IN ('COMPLETED', 'FAILED', 'LEASE_EXPIRED') AND a.tag_key IS NOT NULL)

-- name: execution_memory
-- One round trip, one row: `history`, the :history_limit most relevant finished attempts, best
-- first (this task's own, of any outcome, newest first; then its similar group's, the same
-- orchestrator, workspace and tag set; then its workspace's), each listed once, under its first
-- source; and `groups`, the samples each group's window offers. A window is the group's :window
-- most recent attempts with a verdict that ended before :before (NULL: now), so an attempt's
-- estimate is the same wherever and whenever it is read. The similar and workspace windows
-- hold enough for the history: :window is at least twice the largest :history_limit, and only
-- this task's own attempts (listed first) are left out of them.
WITH similar_group AS MATERIALIZED (
    SELECT * FROM task_attempts a
    WHERE a.orchestrator_id = :orchestrator_id AND a.workspace_id = :workspace_id
      AND a.tag_key = tag_set_key(CAST(:tags AS text[])) AND {{verdict}}
      AND {{before}}
    ORDER BY a.ended_at DESC LIMIT :window
), orchestrator_group AS MATERIALIZED (
    SELECT a.outcome, a.started_at, a.ended_at FROM task_attempts a
    WHERE a.orchestrator_id = :orchestrator_id AND a.workspace_id = :workspace_id AND {{verdict}}
      AND {{before}}
    ORDER BY a.ended_at DESC LIMIT :window
), workspace_group AS MATERIALIZED (
    SELECT * FROM task_attempts a
    WHERE a.workspace_id = :workspace_id AND {{verdict}}
      AND {{before}}
    ORDER BY a.ended_at DESC LIMIT :window
), own AS (
    SELECT * FROM task_attempts a
    WHERE a.task_id = :task_id AND a.ended_at IS NOT NULL
    ORDER BY a.attempt DESC LIMIT :history_limit
), candidates AS (
    SELECT 1 AS source, own.* FROM own
    UNION ALL SELECT 2, g.* FROM similar_group g WHERE g.task_id <> :task_id
    UNION ALL SELECT 3, g.* FROM workspace_group g WHERE g.task_id <> :task_id
), listed AS (
    SELECT DISTINCT ON (task_id, attempt) * FROM candidates ORDER BY task_id, attempt, source
), chosen AS (
    SELECT * FROM listed ORDER BY source, ended_at DESC, task_id, attempt DESC LIMIT :history_limit
), samples AS (
    SELECT 1 AS step, outcome, started_at, ended_at FROM similar_group
    UNION ALL SELECT 2, outcome, started_at, ended_at FROM orchestrator_group
    UNION ALL SELECT 3, outcome, started_at, ended_at FROM workspace_group
)
SELECT
    (SELECT COALESCE(json_agg(json_build_object(
                'source', c.source, 'task_id', c.task_id, 'title', t.title,
                'orchestrator_id', t.orchestrator_id, 'attempt', c.attempt, 'identity', c.identity,
                'outcome', c.outcome, 'started_at', c.started_at, 'ended_at', c.ended_at,
                'reason', c.reason, 'output_excerpt', c.output_excerpt, 'lessons', c.lessons)
            ORDER BY c.source, c.ended_at DESC, c.task_id, c.attempt DESC), '[]')
     FROM chosen c JOIN tasks t ON t.id = c.task_id) AS history,
    (SELECT COALESCE(json_agg(json_build_object(
                'step', s.step, 'completed', s.completed, 'finished', s.finished, 'failed', s.failed,
                'p50', s.p50, 'p90', s.p90) ORDER BY s.step), '[]')
     FROM (
        SELECT step,
               count(*) FILTER (WHERE outcome = 'COMPLETED') AS completed,
               count(*) AS finished,
               count(*) FILTER (WHERE outcome IN ('FAILED', 'LEASE_EXPIRED')) AS failed,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at))
                   FILTER (WHERE outcome = 'COMPLETED') AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at))
                   FILTER (WHERE outcome = 'COMPLETED') AS p90
        FROM samples GROUP BY step) AS s) AS groups;

-- name: running_attempt
-- The task with how long its running `attempt` has run, by the database's clock (the one its
-- start time is on), and whether its ETAs blend an estimate; no row unless that attempt is the
-- running one.
SELECT t.*, extract(epoch FROM now() - t.started_at) AS elapsed_seconds, a.estimated
FROM tasks t JOIN task_attempts a ON a.task_id = t.id AND a.attempt = t.attempt
WHERE t.id = :id AND t.status = 'IN_PROGRESS' AND t.attempt = :attempt;

-- name: group_attempts
-- Up to :batch attempts recorded before migration 0008 get what groups them with similar work,
-- from their task. SKIP LOCKED lets the servers share the work; each batch commits on its own.
WITH pending AS MATERIALIZED (
    SELECT task_id, attempt FROM task_attempts WHERE tag_key IS NULL
    LIMIT :batch
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE task_attempts a
SET orchestrator_id = t.orchestrator_id, workspace_id = t.workspace_id, tag_key = tag_set_key(t.tags)
FROM pending, tasks t
WHERE a.task_id = pending.task_id AND a.attempt = pending.attempt AND t.id = a.task_id
RETURNING a.task_id;
