-- Every statement WorkEngine runs, by name. Python only binds parameters.
-- Array and JSON parameters use CAST(:x AS type): SQLAlchemy reads ":x::type" as a bind name.

-- name: insert_orchestrator
INSERT INTO orchestrators (id, display_name, role, discipline, capabilities, daemon_endpoint,
                           status, timezone, charter, last_heartbeat_at)
VALUES (:id, :display_name, :role, :discipline, CAST(:capabilities AS text[]), :daemon_endpoint,
        :status, :timezone, CAST(:charter AS jsonb), now())
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: get_orchestrator
SELECT * FROM orchestrators WHERE id = :id;

-- name: list_orchestrators
SELECT * FROM orchestrators
WHERE (CAST(:status AS text) IS NULL OR status = :status)
  AND (created_at, id) > (:after_created_at, :after_id)
ORDER BY created_at, id
LIMIT :limit;

-- name: set_orchestrator_status
UPDATE orchestrators
SET status = :status, updated_at = now(), last_heartbeat_at = now()
WHERE id = :id
RETURNING *;

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
-- creation with the same key waits here for the other to commit, then does nothing).
INSERT INTO tasks (id, orchestrator_id, workspace_id, channel_id, title, description, priority,
                   status, due_at, tags, depends_on, unmet_dependency_count, metadata, max_attempts,
                   lease_seconds, idempotency_key, request_fingerprint)
VALUES (:id, :orchestrator_id, :workspace_id, :channel_id, :title, :description, :priority,
        :status, :due_at, CAST(:tags AS text[]), CAST(:depends_on AS text[]), :unmet_dependency_count,
        CAST(:metadata AS jsonb), :max_attempts, :lease_seconds, :idempotency_key, :request_fingerprint)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: get_task_by_idempotency_key
SELECT * FROM tasks WHERE orchestrator_id = :orchestrator_id AND idempotency_key = :idempotency_key;

-- name: insert_dependencies
INSERT INTO task_dependencies (task_id, depends_on_id)
SELECT :task_id, unnest(CAST(:ids AS text[]));

-- name: get_task
SELECT * FROM tasks WHERE id = :id;

-- name: get_task_with_attempts
-- One round trip: the task and its attempt history as a JSON array, first attempt first.
SELECT t.*, COALESCE((
    SELECT json_agg(json_build_object('attempt', a.attempt, 'identity', a.identity,
                                      'started_at', a.started_at, 'ended_at', a.ended_at,
                                      'outcome', a.outcome, 'reason', a.reason) ORDER BY a.attempt)
    FROM task_attempts a WHERE a.task_id = t.id), '[]') AS attempts
FROM tasks t WHERE t.id = :id;

-- part: start_attempt
-- The SET list of every start: a new attempt holding a fresh lease of the requested length,
-- else the task's own, else the server's default.
status = 'IN_PROGRESS', attempt = t.attempt + 1, started_at = now(), updated_at = now(),
progress = 0, progress_message = '', status_reason = '', result = NULL,
completion_fingerprint = NULL, completed_at = NULL, retry_at = NULL,
attempt_lease_seconds = COALESCE(CAST(:lease_seconds AS integer), t.lease_seconds, :default_lease_seconds),
lease_expires_at = now() + make_interval(
    secs => COALESCE(CAST(:lease_seconds AS integer), t.lease_seconds, :default_lease_seconds))

-- part: record_attempt
-- Appends the started attempt to the history.
history AS (
    INSERT INTO task_attempts (task_id, attempt, identity, started_at)
    SELECT id, attempt, :identity, started_at FROM changed
)

-- part: changed_event
-- Records the event of the task the statement changed (the CTE `changed`, one row) in the same
-- round trip, and returns the task with the event's position and time.
/*part: changed_event_insert*/
SELECT changed.*, event.event_position, event.event_time FROM changed, event

-- part: changed_event_insert
-- The CTE `event`: the transaction's :seq-th event, for the task in the CTE `changed`, with the
-- task's status, attempt and percent right after the change.
event AS (
    INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                             message, metadata)
    SELECT /*part: event_position*/ + :seq, id, orchestrator_id, workspace_id, :event_kind, status, attempt,
           progress, :event_message, CAST(:event_metadata AS jsonb)
    FROM changed
    RETURNING position AS event_position, occurred_at AS event_time
)

-- part: ready_in_segment
-- The ready tasks of one (priority, deadline bucket) range, `segment`, in tie-break order: the
-- order of tasks_ready_idx, so taking the first rows is an index probe.
t.orchestrator_id = :orchestrator_id
  AND t.status = 'TODO'
  AND t.priority = segment.priority
  AND t.due_key BETWEEN COALESCE(segment.due_from, '-infinity') AND COALESCE(segment.due_to, 'infinity')
  AND t.tags @> CAST(:required_tags AS text[])
  AND t.id <> ALL(CAST(:excluded_ids AS text[]))
ORDER BY t.due_key, t.created_at, t.id

-- part: ranked_segments
-- Every segment that holds a ready task, with its head, best first: by score, then the head's
-- due time, priority, age and id. One index probe per segment (at most 16), so the cost does
-- not grow with the backlog.
SELECT segment.priority, segment.due_from, segment.due_to, segment.weight * segment.boost AS score,
       head.id AS head_id
FROM unnest(CAST(:priorities AS smallint[]), CAST(:weights AS integer[]), CAST(:boosts AS integer[]),
            CAST(:due_froms AS timestamptz[]), CAST(:due_tos AS timestamptz[]))
     AS segment(priority, weight, boost, due_from, due_to)
CROSS JOIN LATERAL (
    SELECT t.id, t.due_key, t.created_at FROM tasks t
    WHERE /*part: ready_in_segment*/
    LIMIT 1
) AS head
ORDER BY score DESC, head.due_key, segment.priority DESC, head.created_at, head.id

-- name: select_next_task
WITH best AS (
    /*part: ranked_segments*/
    LIMIT 1
)
SELECT t.*, best.score FROM best JOIN tasks t ON t.id = best.head_id;

-- name: claim_next_task
-- Walks the ranked segments best first (their heads were read without locks), taking the first
-- row of a segment that no concurrent claimer holds (FOR NO KEY UPDATE SKIP LOCKED), and starts
-- it in the same statement. The walk is a nested loop under LIMIT 1, so it stops at the first
-- segment that yields a row: only the winner is locked, and a claimer never comes back empty
-- because others hold the heads it ranked.
WITH ranked AS MATERIALIZED (
    /*part: ranked_segments*/
), winner AS MATERIALIZED (
    SELECT picked.id, segment.score
    FROM ranked AS segment
    CROSS JOIN LATERAL (
        SELECT t.id FROM tasks t
        WHERE /*part: ready_in_segment*/
        LIMIT 1
        FOR NO KEY UPDATE OF t SKIP LOCKED
    ) AS picked
    LIMIT 1
), changed AS (
    UPDATE tasks t
    SET /*part: start_attempt*/
    FROM winner
    WHERE t.id = winner.id
    RETURNING t.*, winner.score
), /*part: record_attempt*/, /*part: changed_event_insert*/,
related AS (
    SELECT t.*, CAST(NULL AS integer) AS score, row_number() OVER (ORDER BY t.created_at DESC, t.id DESC) AS ordinal
    FROM changed CROSS JOIN LATERAL (
        SELECT t.* FROM tasks t WHERE /*part: related_to_changed*/
    ) AS t
)
-- The context's related tasks (as of the statement's start) come back in the same round trip:
-- first, newest first, then the claimed task, last (pgbench's \aset keeps the last row).
SELECT related.*, CAST(NULL AS bigint) AS event_position, CAST(NULL AS timestamptz) AS event_time FROM related
UNION ALL
SELECT changed.*, NULL, event.event_position, event.event_time FROM changed, event
ORDER BY ordinal NULLS LAST;

-- part: related_to_changed
-- The context's related tasks of the task in `changed`: the newest other unfinished tasks of its
-- workspace (tasks_workspace_created_idx, read backwards).
t.workspace_id = changed.workspace_id AND t.id <> changed.id AND t.status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
ORDER BY t.created_at DESC, t.id DESC
LIMIT :related_limit

-- name: start_task
WITH changed AS (
    UPDATE tasks t
    SET /*part: start_attempt*/
    WHERE t.id = :id AND t.status = 'TODO'
    RETURNING t.*
), /*part: record_attempt*/, /*part: changed_event*/;

-- part: lease_held
-- The report's attempt is the running one and its lease has not run out (the reaper may not
-- have returned the task yet: the attempt has lost it all the same).
t.status = 'IN_PROGRESS' AND t.attempt = :attempt AND t.lease_expires_at > now()

-- part: moved_events
-- One event per task in the CTE `moved` (:event_kind, :event_message), numbered from this
-- transaction's :seq-th event; returns the tasks with their event's position and time.
numbered AS (
    SELECT moved.*, /*part: event_position*/ + :seq + row_number() OVER (ORDER BY id) - 1 AS event_position
    FROM moved
), events AS (
    INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                             message)
    SELECT event_position, id, orchestrator_id, workspace_id, :event_kind, status, attempt, progress,
           :event_message
    FROM numbered
)
-- now() is the transaction's start, the occurred_at the events just got by default.
SELECT numbered.*, now() AS event_time FROM numbered ORDER BY event_position

-- part: asynchronous_commit
-- synchronous_commit = off for this transaction only: its commit does not wait for the WAL
-- flush. A database crash may lose the last such commits (a percentage, a lease extension),
-- never a start, a completion or anything else: those commit synchronously. Losing a lease
-- extension at worst hands the task out again early, and the attempt fence stops the old run.
set_config('synchronous_commit', 'off', true) IS NOT NULL

-- name: record_progress
-- One statement, run on its own (no BEGIN/COMMIT): the update, which extends the lease as a
-- heartbeat does, and its PROGRESS event. Commits asynchronously (see asynchronous_commit).
WITH changed AS (
    UPDATE tasks t
    SET progress = :progress, progress_message = :message, updated_at = now(),
        lease_expires_at = now() + make_interval(secs => t.attempt_lease_seconds)
    WHERE t.id = :id AND /*part: lease_held*/ AND /*part: asynchronous_commit*/
    RETURNING t.*
), /*part: changed_event*/;

-- name: heartbeat
-- Run on its own; commits asynchronously (see asynchronous_commit).
UPDATE tasks t
SET lease_expires_at = now() + make_interval(
    secs => COALESCE(CAST(:lease_seconds AS integer), t.attempt_lease_seconds))
WHERE t.id = :id AND /*part: lease_held*/ AND /*part: asynchronous_commit*/
RETURNING *;

-- name: complete_task
-- FOR UPDATE first: see lock_dependencies. A FAILED report counts against max_attempts; a
-- BLOCKED one with retry_after gets a time to return to TODO. Commits synchronously.
WITH locked AS (SELECT id FROM tasks WHERE id = :id FOR UPDATE), changed AS (
    UPDATE tasks t
    SET status = :status, status_reason = :status_reason, result = CAST(:result AS jsonb),
        completion_fingerprint = :fingerprint, updated_at = now(),
        completed_at = CASE WHEN :status = 'BLOCKED' THEN NULL ELSE now() END,
        progress = CASE WHEN :status = 'DONE' THEN 100 ELSE t.progress END,
        failure_count = t.failure_count + CASE WHEN :status = 'FAILED' THEN 1 ELSE 0 END,
        retry_at = now() + make_interval(secs => CAST(:retry_after_seconds AS double precision)),
        lease_expires_at = NULL
    FROM locked
    WHERE t.id = locked.id AND /*part: lease_held*/
    RETURNING t.*
), history AS (
    UPDATE task_attempts a SET ended_at = now(), outcome = :outcome, reason = :status_reason
    FROM changed WHERE a.task_id = changed.id AND a.attempt = changed.attempt
), /*part: changed_event*/;

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

-- name: lock_task
SELECT * FROM tasks WHERE id = :id FOR NO KEY UPDATE;

-- name: retry_task
-- FAILED -> TODO (the engine checked the attempt budget under lock_task). Its dependencies
-- were met when it started and met is final (DONE or CANCELLED), so it is ready at once.
UPDATE tasks t
SET status = 'TODO', status_reason = '', completed_at = NULL, updated_at = now(),
    max_attempts = :max_attempts
WHERE t.id = :id AND t.status = 'FAILED'
RETURNING *;

-- name: reap_expired_leases
-- Up to :batch tasks whose lease ran out go back to TODO, or to FAILED once lease expiries
-- plus reported failures reach max_attempts (the rule of domain/attempts.py), each with a
-- LEASE_EXPIRED event. SKIP LOCKED lets reapers in several processes share the work; the
-- UPDATE re-checks the lease, so a heartbeat that committed first wins.
WITH expired AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE status = 'IN_PROGRESS' AND lease_expires_at <= now()
    ORDER BY lease_expires_at
    LIMIT :batch
    FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
    UPDATE tasks t
    SET lease_expiry_count = t.lease_expiry_count + 1,
        status = CASE WHEN t.lease_expiry_count + 1 + t.failure_count >= t.max_attempts
                      THEN 'FAILED' ELSE 'TODO' END,
        status_reason = 'lease expired',
        completed_at = CASE WHEN t.lease_expiry_count + 1 + t.failure_count >= t.max_attempts
                            THEN now() END,
        lease_expires_at = NULL, updated_at = now()
    FROM expired
    WHERE t.id = expired.id AND t.status = 'IN_PROGRESS' AND t.lease_expires_at <= now()
    RETURNING t.*
), history AS (
    UPDATE task_attempts a SET ended_at = now(), outcome = 'LEASE_EXPIRED', reason = 'lease expired'
    FROM moved WHERE a.task_id = moved.id AND a.attempt = moved.attempt
), /*part: moved_events*/;

-- name: release_due_retries
-- Up to :batch tasks reported BLOCKED with a retry time that has come go back to TODO, each
-- with an UNBLOCKED event.
WITH due AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE status = 'BLOCKED' AND retry_at <= now()
    ORDER BY retry_at
    LIMIT :batch
    FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
    UPDATE tasks t
    SET status = 'TODO', status_reason = '', retry_at = NULL, updated_at = now()
    FROM due
    WHERE t.id = due.id AND t.status = 'BLOCKED' AND t.retry_at <= now()
    RETURNING t.*
), /*part: moved_events*/;

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
    SELECT FROM task_events WHERE position = /*part: event_position*/ + :finished_seq AND task_id = :id
), targets AS MATERIALIZED (
    SELECT t.id FROM tasks t JOIN task_dependencies d ON d.task_id = t.id
    WHERE d.depends_on_id = :id AND EXISTS (SELECT FROM finished)
    ORDER BY t.id
    FOR NO KEY UPDATE OF t
), released AS (
    UPDATE tasks t
    SET unmet_dependency_count = t.unmet_dependency_count - 1,
        status = CASE WHEN t.unmet_dependency_count = 1 AND t.status = 'BLOCKED' THEN 'TODO' ELSE t.status END,
        updated_at = now()
    FROM targets
    WHERE t.id = targets.id
    RETURNING t.*
), unblocked AS (
    SELECT released.*, /*part: event_position*/ + :seq + row_number() OVER (ORDER BY id) - 1 AS event_position
    FROM released WHERE status = 'TODO' AND unmet_dependency_count = 0
), events AS (
    -- Runs to completion though nothing reads it. Not joined back to `unblocked`: PostgreSQL
    -- 15 estimates both CTEs at one row and nested-loops them, O(dependents^2).
    INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress)
    SELECT event_position, id, orchestrator_id, workspace_id, 'UNBLOCKED', status, attempt, progress
    FROM unblocked
)
-- now() is the transaction's start, the occurred_at the events just got by default.
SELECT unblocked.*, now() AS event_time FROM unblocked ORDER BY event_position;

-- name: insert_event
INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                         message, metadata)
VALUES (/*part: event_position*/ + :seq, :task_id, :orchestrator_id, :workspace_id, :kind, :status, :attempt,
        :progress, :message, CAST(:metadata AS jsonb))
RETURNING position, occurred_at;

-- name: dependency_states
SELECT id, title, status FROM tasks WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id;

-- name: related_tasks
SELECT t.* FROM (SELECT CAST(:workspace_id AS text) AS workspace_id, CAST(:id AS text) AS id) AS changed
CROSS JOIN LATERAL (
    SELECT t.* FROM tasks t WHERE /*part: related_to_changed*/
) AS t;

-- name: list_tasks
SELECT * FROM tasks
WHERE (CAST(:orchestrator_id AS text) IS NULL OR orchestrator_id = :orchestrator_id)
  AND (CAST(:workspace_id AS text) IS NULL OR workspace_id = :workspace_id)
  AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
  AND (CAST(:tag AS text) IS NULL OR tags @> ARRAY[CAST(:tag AS text)])
  AND (created_at, id) > (:after_created_at, :after_id)
ORDER BY created_at, id
LIMIT :limit;

-- name: execution_rollup
-- GetExecutionStats' numbers for the tasks created in [start, end), from execution_rollup (see
-- migration 0005): the range's whole UTC days from the day rows, its other whole hours from the
-- hour rows, plus the deltas of those hours not folded yet, plus the tasks of the partial hours
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

-- The event log. A position is (xid << 20) + n: the writing transaction's id, then its n-th
-- event (n < 2^20). Readers take only positions below the watermark: (the oldest transaction
-- still running that could be writing events) << 20, or xmax << 20 when there is none. Any
-- transaction that may still commit an event has an xid at or above it, so the events a reader
-- has taken form a prefix that later commits never punch holes into. Transactions that cannot
-- write events are left out so they cannot stall delivery: those of other databases, and those
-- of sessions not named 'workengine' (every WorkEngine pool connection is; nothing else may
-- write task_events). A WorkEngine write transaction delays delivery until it ends; none is
-- ever skipped.

-- part: event_position
(pg_current_xact_id()::text::bigint << 20)

-- part: watermark
(COALESCE(
    (SELECT min(running.xid::text::bigint)
     FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
     WHERE xid(running.xid) NOT IN (
         SELECT backend_xid FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL
           AND (datname IS DISTINCT FROM current_database() OR application_name <> 'workengine'))),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint) << 20)

-- part: event_log_state
log AS (
    SELECT /*part: watermark*/ AS watermark,
           (SELECT max(position) FROM task_events) AS head,
           (SELECT pruned_through FROM event_log) AS pruned_through
)

-- part: event_columns
e.position AS event_position, e.kind AS event_kind, e.status AS event_status, e.attempt AS event_attempt,
e.progress AS event_progress, e.message AS event_message, e.metadata AS event_metadata,
e.occurred_at AS event_time, t.*

-- part: snapshot_where
-- The scope's position and its events committed above the watermark yet already visible
-- here (the snapshot shows their effect), then the tasks; the scope condition follows.
WITH log AS (
    SELECT GREATEST(COALESCE((SELECT max(position) FROM task_events WHERE position < w.watermark), 0),
                    (SELECT pruned_through FROM event_log)) AS snapshot_position,
           ARRAY(SELECT e.position FROM task_events e WHERE e.position >= w.watermark AND

-- part: snapshot_end
           ORDER BY e.position) AS seen_positions
    FROM (SELECT /*part: watermark*/ AS watermark) w
)

-- part: events_page_where
-- A page of events after :after in one scope (the condition follows), below the watermark,
-- with the log's head and pruning horizon on every row: the horizon is read in the same
-- snapshot as the page, so a concurrent prune cannot slip between the check and the read.
WITH /*part: event_log_state*/
SELECT log.head, log.pruned_through, page.*
FROM log LEFT JOIN LATERAL (
    SELECT /*part: event_columns*/
    FROM task_events e JOIN tasks t ON t.id = e.task_id
    WHERE

-- part: events_page_end
    AND e.position > :after AND e.position < log.watermark
    ORDER BY e.position
    LIMIT :limit
) page ON true
ORDER BY page.event_position

-- name: tail_events
-- Every scope: what the process-wide tailer fans out. One row with NULL event columns when
-- nothing is ready, so head and pruned_through always come back.
/*part: events_page_where*/ true
/*part: events_page_end*/;

-- name: task_events_after
/*part: events_page_where*/ e.task_id = :scope_id
/*part: events_page_end*/;

-- name: orchestrator_events_after
/*part: events_page_where*/ e.orchestrator_id = :scope_id
/*part: events_page_end*/;

-- name: workspace_events_after
/*part: events_page_where*/ e.workspace_id = :scope_id
/*part: events_page_end*/;

-- name: head_position
-- Where a tailer starting now begins: everything at or below it is final.
SELECT COALESCE(max(position), 0) AS position FROM task_events WHERE position < /*part: watermark*/;

-- name: task_snapshot
/*part: snapshot_where*/ e.task_id = :scope_id /*part: snapshot_end*/
SELECT log.snapshot_position, log.seen_positions, t.*
FROM log LEFT JOIN LATERAL (SELECT * FROM tasks WHERE id = :scope_id) t ON true;

-- name: orchestrator_snapshot
/*part: snapshot_where*/ e.orchestrator_id = :scope_id /*part: snapshot_end*/
SELECT log.snapshot_position, log.seen_positions, t.*
FROM log LEFT JOIN LATERAL (
    SELECT * FROM tasks
    WHERE orchestrator_id = :scope_id AND status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
    ORDER BY created_at, id
    LIMIT :limit
) t ON true
ORDER BY t.created_at, t.id;

-- name: workspace_snapshot
/*part: snapshot_where*/ e.workspace_id = :scope_id /*part: snapshot_end*/
SELECT log.snapshot_position, log.seen_positions, t.*
FROM log LEFT JOIN LATERAL (
    SELECT * FROM tasks
    WHERE workspace_id = :scope_id AND status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
    ORDER BY created_at, id
    LIMIT :limit
) t ON true
ORDER BY t.created_at, t.id;

-- name: try_lock_pruning
-- One pruner at a time across every process; the others skip their turn.
SELECT pg_try_advisory_xact_lock(hashtext('workengine.prune_events')) AS locked;

-- name: prune_events
-- Deletes the oldest events older than the cutoff, a batch at a time, strictly as a prefix of
-- the log (stopping at the first younger event), and records the highest position deleted.
WITH oldest AS MATERIALIZED (
    SELECT position, occurred_at FROM task_events
    WHERE position < /*part: watermark*/
    ORDER BY position
    LIMIT :batch
), cut AS (
    SELECT max(position) AS through FROM oldest
    WHERE position < COALESCE(
        (SELECT min(position) FROM oldest WHERE occurred_at >= now() - make_interval(secs => :retention_seconds)),
        9223372036854775807)
), deleted AS (
    DELETE FROM task_events e USING cut WHERE e.position <= cut.through
    RETURNING e.position
), horizon AS (
    UPDATE event_log SET pruned_through = GREATEST(pruned_through, cut.through)
    FROM cut WHERE cut.through IS NOT NULL
    RETURNING pruned_through
)
SELECT (SELECT count(*) FROM deleted) AS deleted, (SELECT max(pruned_through) FROM horizon) AS pruned_through;

-- name: notify_events
SELECT pg_notify(:channel, :payload);

-- name: insert_orchestrator_token
-- Only the sha256 of the token is stored; the token itself is shown once, to the caller.
INSERT INTO orchestrator_tokens (token_hash, orchestrator_id, expires_at)
VALUES (:token_hash, :orchestrator_id, :expires_at);

-- name: find_orchestrator_token
SELECT orchestrator_id, expires_at, revoked_at FROM orchestrator_tokens WHERE token_hash = :token_hash;

-- name: retire_orchestrator_tokens
-- Makes every token of the orchestrator stop working at :retire_at (now, or the end of a
-- rotation's grace period), unless it stops earlier anyway; returns how many changed.
WITH retired AS (
    UPDATE orchestrator_tokens SET revoked_at = :retire_at
    WHERE orchestrator_id = :orchestrator_id
      AND (revoked_at IS NULL OR revoked_at > :retire_at)
      AND (expires_at IS NULL OR expires_at > :retire_at)
    RETURNING 1
)
SELECT count(*) AS retired FROM retired;

-- name: delete_dead_orchestrator_tokens
-- Tokens that stopped working more than a day ago: kept that long so "revoked" and "expired"
-- can still be told apart from "unknown" in the error a stale client gets.
DELETE FROM orchestrator_tokens
WHERE orchestrator_id = :orchestrator_id
  AND LEAST(COALESCE(revoked_at, 'infinity'), COALESCE(expires_at, 'infinity')) < :now - interval '1 day';

-- name: task_owner
-- The orchestrator a task is assigned to; it never changes, so callers may cache it.
SELECT orchestrator_id FROM tasks WHERE id = :id;
