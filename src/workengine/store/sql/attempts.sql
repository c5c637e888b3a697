-- Attempts and leases: starting a task under a new attempt (a claim or an explicit start),
-- progress and heartbeats that keep its lease, completion, and the two background duties that
-- move tasks on time (expired leases, due retries).

-- include: start_winner
-- The CTE `changed`: the task of the CTE `winner` (one row: id, score, ready_since), started
-- under a new attempt holding a fresh lease of the requested length, else the task's own, else
-- the server's default. `ready_since` is the TODO row's last change (its creation, release or
-- return to TODO), reported for the queue-wait metric.
changed AS (
    UPDATE tasks t
    SET status = 'IN_PROGRESS', attempt = t.attempt + 1, started_at = now(), updated_at = now(),
        progress = 0, progress_message = '', status_reason = '', result = NULL,
        completion_fingerprint = NULL, completed_at = NULL, retry_at = NULL, estimated_completion_at = NULL,
        attempt_lease_seconds = COALESCE(CAST(:lease_seconds AS integer), t.lease_seconds, :default_lease_seconds),
        lease_expires_at = now() + make_interval(
            secs => COALESCE(CAST(:lease_seconds AS integer), t.lease_seconds, :default_lease_seconds))
    FROM winner
    WHERE t.id = winner.id
    RETURNING t.*, winner.score, winner.ready_since
)

-- include: record_attempt
-- The CTE `history`: appends the attempt started in `changed` to the history, with what groups
-- it with similar work and whether its ETAs blend an estimate (sql/history.sql).
history AS (
    INSERT INTO task_attempts (task_id, attempt, identity, started_at, orchestrator_id, workspace_id, tag_key,
                               estimated)
    SELECT id, attempt, :identity, started_at, orchestrator_id, workspace_id, tag_set_key(tags), :estimated
    FROM changed
)

-- name: claim_next_task
-- Walks the ranked segments best first (their heads were read without locks), taking the first
-- row of a segment that no concurrent claimer holds (FOR NO KEY UPDATE SKIP LOCKED), and starts
-- it in the same statement. The walk is a nested loop under LIMIT 1, so it stops at the first
-- segment that yields a row: only the winner is locked, and a claimer never comes back empty
-- because others hold the heads it ranked.
WITH ranked AS MATERIALIZED (
    {{ranked_segments}}
), winner AS MATERIALIZED (
    SELECT picked.id, segment.score, picked.updated_at AS ready_since
    FROM ranked AS segment
    CROSS JOIN LATERAL (
        SELECT t.id, t.updated_at FROM tasks t
        WHERE {{ready_in_segment}}
        ORDER BY t.due_key, t.created_at, t.id
        LIMIT 1
        FOR NO KEY UPDATE OF t SKIP LOCKED
    ) AS picked
    LIMIT 1
), {{start_winner}}, {{record_attempt}}, {{changed_event}},
related AS (
    SELECT t.*, CAST(NULL AS integer) AS score, CAST(NULL AS timestamptz) AS ready_since,
           row_number() OVER (ORDER BY t.created_at DESC, t.id DESC) AS ordinal
    FROM changed CROSS JOIN LATERAL ({{related_of_changed}}) AS t
)
-- The context's related tasks (as of the statement's start) come back in the same round trip:
-- first, newest first, then the claimed task, last (pgbench's \aset keeps the last row).
SELECT related.*, CAST(NULL AS bigint) AS event_position, CAST(NULL AS timestamptz) AS event_time,
       CAST(NULL AS jsonb) AS trace_context
FROM related
UNION ALL
SELECT t.*, NULL, event.event_position, event.event_time, {{trace_context_of_t}}
FROM changed AS t, event
ORDER BY ordinal NULLS LAST;

-- name: start_task
-- TODO -> IN_PROGRESS for one given task (ExecuteTask), as a claim starts one.
WITH winner AS MATERIALIZED (
    SELECT id, CAST(NULL AS integer) AS score, updated_at AS ready_since
    FROM tasks WHERE id = :id AND status = 'TODO' FOR NO KEY UPDATE
), {{start_winner}}, {{record_attempt}}, {{changed_event}}
SELECT t.*, event.event_position, event.event_time, {{trace_context_of_t}} AS trace_context
FROM changed AS t, event;

-- include: lease_held
-- The report's attempt is the running one and its lease has not run out (the reaper may not
-- have returned the task yet: the attempt has lost it all the same).
(t.status = 'IN_PROGRESS' AND t.attempt = :attempt AND t.lease_expires_at > now())

-- include: asynchronous_commit
-- synchronous_commit = off for this transaction only: its commit does not wait for the WAL
-- flush. Only for a heartbeat, which records no event: a database crash may lose the last lease
-- extensions, which at worst hands a task out again early (the attempt fence stops the old
-- run). A statement that records an event must commit synchronously: an asynchronous commit is
-- visible before it is durable, so a watcher could receive an event the crash then loses, and
-- the transaction ids after the restart would reuse its id, so events committed next would sit
-- below that watcher's cursor and never reach it.
(set_config('synchronous_commit', 'off', true) IS NOT NULL)

-- name: record_progress
-- One statement, run on its own (no BEGIN/COMMIT): the update, which extends the lease as a
-- heartbeat does and sets the ETA :remaining_seconds from now (none when NULL), and its PROGRESS
-- event. Commits synchronously (see asynchronous_commit).
WITH changed AS (
    UPDATE tasks t
    SET progress = :progress, progress_message = :message, updated_at = now(),
        estimated_completion_at = now() + make_interval(secs => CAST(:remaining_seconds AS double precision)),
        lease_expires_at = now() + make_interval(secs => t.attempt_lease_seconds)
    WHERE t.id = :id AND {{lease_held}}
    RETURNING t.*
), {{changed_event}}
SELECT changed.*, event.event_position, event.event_time FROM changed, event;

-- name: heartbeat
-- Run on its own; commits asynchronously (see asynchronous_commit).
UPDATE tasks t
SET lease_expires_at = now() + make_interval(
    secs => COALESCE(CAST(:lease_seconds AS integer), t.attempt_lease_seconds))
WHERE t.id = :id AND {{lease_held}} AND {{asynchronous_commit}}
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
    WHERE t.id = locked.id AND {{lease_held}}
    RETURNING t.*
), history AS (
    UPDATE task_attempts a
    SET ended_at = now(), outcome = :outcome, reason = :status_reason, output_excerpt = :output_excerpt,
        lessons = CAST(:lessons AS text[])
    FROM changed WHERE a.task_id = changed.id AND a.attempt = changed.attempt
), {{changed_event}}
SELECT changed.*, event.event_position, event.event_time FROM changed, event;

-- name: reap_expired_leases
-- Up to :batch tasks whose lease ran out go back to TODO, or to FAILED once lease expiries
-- plus reported failures reach max_attempts (domain/attempts.py counts the same), each with a
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
), {{numbered_moves}}, {{moved_events}}
-- now() is the transaction's start, the occurred_at the events just got by default.
SELECT numbered.*, now() AS event_time FROM numbered ORDER BY event_position;

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
), {{numbered_moves}}, {{moved_events}}
-- now() is the transaction's start, the occurred_at the events just got by default.
SELECT numbered.*, now() AS event_time FROM numbered ORDER BY event_position;
