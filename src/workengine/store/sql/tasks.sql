-- Tasks: creation with dependencies, reads and listings, selection, cancel and retry, and the
-- release of dependents when a task finishes.
-- Array and JSON parameters use CAST(:x AS type); ":x::type" would read as a parameter named x.

-- name: lock_dependencies
-- FOR KEY SHARE conflicts with the FOR UPDATE that complete_task and cancel_task take before
-- finishing a task, so a concurrent finish of a dependency waits for this creation to commit
-- and its release_dependents sees the new edge: the counter never misses a decrement. It does
-- not conflict with FOR NO KEY UPDATE, so claims and progress on the dependency go on, and a
-- finish releasing dependents (FOR NO KEY UPDATE on them) never deadlocks with a creation.
-- Every statement that moves a task to DONE or CANCELLED must lock it FOR UPDATE first.
SELECT id, status FROM tasks WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR KEY SHARE;

-- name: insert_task
-- Does nothing when the id or the orchestrator's idempotency key is taken (a concurrent
-- creation with the same key waits here for the other to commit, then does nothing). The
-- creator's trace context, when it sent one, goes to task_trace_contexts (migration 0007).
-- A task ready but for its scheduled start (:not_before still to come, by the database's
-- clock) is BLOCKED until then, with that retry time (migration 0009).
WITH task AS (
    INSERT INTO tasks (id, orchestrator_id, workspace_id, channel_id, title, description, priority,
                       status, due_at, tags, depends_on, unmet_dependency_count, metadata, max_attempts,
                       lease_seconds, idempotency_key, request_fingerprint, not_before, retry_at)
    SELECT :id, :orchestrator_id, :workspace_id, :channel_id, :title, :description, :priority,
           CASE WHEN scheduled THEN 'BLOCKED' ELSE :status END, :due_at, CAST(:tags AS text[]),
           CAST(:depends_on AS text[]), :unmet_dependency_count, CAST(:metadata AS jsonb), :max_attempts,
           :lease_seconds, :idempotency_key, :request_fingerprint, CAST(:not_before AS timestamptz),
           CASE WHEN scheduled THEN CAST(:not_before AS timestamptz) END
    FROM (SELECT :status = 'TODO' AND CAST(:not_before AS timestamptz) > now() AS scheduled) AS start
    ON CONFLICT DO NOTHING
    RETURNING *
), traced AS (
    INSERT INTO task_trace_contexts (task_id, trace_context)
    SELECT id, CAST(:trace_context AS jsonb) FROM task WHERE :trace_context IS NOT NULL
)
SELECT task.*, CAST(:trace_context AS jsonb) AS trace_context FROM task;

-- name: insert_dependencies
INSERT INTO task_dependencies (task_id, depends_on_id)
SELECT :task_id, unnest(CAST(:ids AS text[]));

-- name: get_task_by_idempotency_key
SELECT * FROM tasks WHERE orchestrator_id = :orchestrator_id AND idempotency_key = :idempotency_key;

-- include: trace_context_of_t
-- The trace context of the task `t` (NULL when its creator sent none).
(SELECT c.trace_context FROM task_trace_contexts c WHERE c.task_id = t.id)

-- name: get_task
SELECT t.*, {{trace_context_of_t}} AS trace_context FROM tasks t WHERE t.id = :id;

-- name: get_task_with_attempts
-- One round trip: the task and its attempt history as a JSON array, first attempt first.
SELECT t.*, COALESCE((
    SELECT json_agg(json_build_object('attempt', a.attempt, 'identity', a.identity,
                                      'started_at', a.started_at, 'ended_at', a.ended_at,
                                      'outcome', a.outcome, 'reason', a.reason) ORDER BY a.attempt)
    FROM task_attempts a WHERE a.task_id = t.id), '[]') AS attempts
FROM tasks t WHERE t.id = :id;

-- name: task_owner
-- The orchestrator a task is assigned to; it never changes, so callers may cache it.
SELECT orchestrator_id FROM tasks WHERE id = :id;

-- name: lock_task
SELECT * FROM tasks WHERE id = :id FOR NO KEY UPDATE;

-- name: list_tasks
SELECT * FROM tasks
WHERE (CAST(:orchestrator_id AS text) IS NULL OR orchestrator_id = :orchestrator_id)
  AND (CAST(:workspace_id AS text) IS NULL OR workspace_id = :workspace_id)
  AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
  AND (CAST(:tag AS text) IS NULL OR tags @> ARRAY[CAST(:tag AS text)])
  AND (created_at, id) > (:after_created_at, :after_id)
ORDER BY created_at, id
LIMIT :limit;

-- name: dependency_states
SELECT id, title, status FROM tasks WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id;

-- include: related_of_changed
-- The context's related tasks of the task in `changed`: the newest other unfinished tasks of
-- its workspace (tasks_workspace_created_idx, read backwards).
SELECT t.* FROM tasks t
WHERE t.workspace_id = changed.workspace_id AND t.id <> changed.id
  AND t.status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
ORDER BY t.created_at DESC, t.id DESC
LIMIT :related_limit

-- name: related_tasks
SELECT t.* FROM (SELECT CAST(:workspace_id AS text) AS workspace_id, CAST(:id AS text) AS id) AS changed
CROSS JOIN LATERAL ({{related_of_changed}}) AS t;

-- include: ready_in_segment
-- A ready task of the orchestrator in one (priority, deadline bucket) range, `segment`, that the
-- criteria admit. Ordered by (due_key, created_at, id), such tasks are a range of
-- tasks_ready_idx, so taking the first is an index probe.
(t.orchestrator_id = :orchestrator_id
 AND t.status = 'TODO'
 AND t.priority = segment.priority
 AND t.due_key BETWEEN COALESCE(segment.due_from, '-infinity') AND COALESCE(segment.due_to, 'infinity')
 AND t.tags @> CAST(:required_tags AS text[])
 AND t.id <> ALL(CAST(:excluded_ids AS text[])))

-- include: selection_segments
-- The (priority, deadline bucket) ranges of domain/scoring.py's segments(), one row each, from
-- the arrays selection_params binds (a subquery the planner pulls up: no plan of its own).
SELECT * FROM unnest(CAST(:priorities AS smallint[]), CAST(:weights AS integer[]),
                     CAST(:boosts AS integer[]), CAST(:due_froms AS timestamptz[]),
                     CAST(:due_tos AS timestamptz[]))
    AS segment(priority, weight, boost, due_from, due_to)

-- include: ranked_segments
-- Every segment that holds a ready task, with its head, best first: by score, then the head's
-- due time, priority, age and id. One index probe per segment (at most 16), so the cost does
-- not grow with the backlog.
SELECT segment.priority, segment.due_from, segment.due_to, segment.weight * segment.boost AS score,
       head.id AS head_id
FROM ({{selection_segments}}) AS segment
CROSS JOIN LATERAL (
    SELECT t.id, t.due_key, t.created_at FROM tasks t
    WHERE {{ready_in_segment}}
    ORDER BY t.due_key, t.created_at, t.id
    LIMIT 1
) AS head
ORDER BY score DESC, head.due_key, segment.priority DESC, head.created_at, head.id

-- name: select_next_task
WITH ranked AS MATERIALIZED (
    {{ranked_segments}}
), best AS (
    SELECT * FROM ranked LIMIT 1
)
SELECT t.*, best.score FROM best JOIN tasks t ON t.id = best.head_id;

-- name: retry_task
-- FAILED -> TODO (the engine checked the attempt budget under lock_task). Its dependencies
-- were met when it started and met is final (DONE or CANCELLED), so it is ready at once.
UPDATE tasks t
SET status = 'TODO', status_reason = '', completed_at = NULL, updated_at = now(),
    max_attempts = :max_attempts
WHERE t.id = :id AND t.status = 'FAILED'
RETURNING *;

-- name: cancel_task
-- FOR UPDATE first: see lock_dependencies. A running attempt ends CANCELLED in the history.
WITH locked AS (SELECT id, status AS previous_status FROM tasks WHERE id = :id FOR UPDATE), cancelled AS (
    UPDATE tasks t
    SET status = 'CANCELLED', status_reason = :reason, completed_at = now(), updated_at = now(),
        lease_expires_at = NULL, retry_at = NULL
    FROM locked
    WHERE t.id = locked.id AND t.status = ANY(CAST(:from_statuses AS text[]))
    RETURNING t.*, locked.previous_status
), history AS (
    UPDATE task_attempts a SET ended_at = now(), outcome = 'CANCELLED', reason = :reason
    FROM cancelled
    WHERE cancelled.previous_status = 'IN_PROGRESS' AND a.task_id = cancelled.id AND a.attempt = cancelled.attempt
)
SELECT * FROM cancelled;

-- include: scheduled
-- The task `t` has a scheduled start still to come (migration 0009).
(t.not_before IS NOT NULL AND t.not_before > now())

-- name: release_dependents
-- One statement for all dependents, however many: decrement each counter and move a
-- BLOCKED task whose last dependency just finished to TODO, recording an UNBLOCKED event.
-- Only tasks blocked on dependencies have a non-zero counter, so a task a daemon reported
-- BLOCKED is never released here.
-- Runs in the transaction that finished :id, after the statement that did: it releases only
-- if that statement recorded the finish as the transaction's :finished_seq-th event, so
-- CompleteTask can send it in one pipeline with the completion, before knowing whether the
-- completion took. (Its own statement, not a CTE of the completion: its snapshot must be
-- taken after the completion's FOR UPDATE waited out a creation adding a dependent; see
-- lock_dependencies.)
-- The dependents are locked in id order first, so two finishes sharing dependents wait for
-- each other instead of deadlocking.
WITH finished AS (
    SELECT FROM task_events WHERE position = {{event_position}} + :finished_seq AND task_id = :id
), targets AS MATERIALIZED (
    SELECT t.id FROM tasks t JOIN task_dependencies d ON d.task_id = t.id
    WHERE d.depends_on_id = :id AND EXISTS (SELECT FROM finished)
    ORDER BY t.id
    FOR NO KEY UPDATE OF t
), released AS (
    UPDATE tasks t
    SET unmet_dependency_count = t.unmet_dependency_count - 1,
        status = CASE WHEN t.unmet_dependency_count = 1 AND t.status = 'BLOCKED' AND NOT {{scheduled}}
                      THEN 'TODO' ELSE t.status END,
        -- A scheduled start still to come: its time is now the retry scheduler's to keep.
        retry_at = CASE WHEN t.unmet_dependency_count = 1 AND t.status = 'BLOCKED' AND {{scheduled}}
                        THEN t.not_before ELSE t.retry_at END,
        updated_at = now()
    FROM targets
    WHERE t.id = targets.id
    RETURNING t.*
), moved AS (
    SELECT * FROM released WHERE status = 'TODO' AND unmet_dependency_count = 0
), {{numbered_moves}}, {{moved_events}}
-- now() is the transaction's start, the occurred_at the events just got by default.
SELECT numbered.*, now() AS event_time FROM numbered ORDER BY event_position;
