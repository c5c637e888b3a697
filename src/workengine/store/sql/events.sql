-- The event log: recording events, reading them in commit order, snapshots, pruning.
--
-- A position is (xid << 20) + n: the writing transaction's id, then its n-th event (n < 2^20).
-- Readers take only positions below the watermark: (the oldest transaction still running that
-- could be writing events) << 20, or xmax << 20 when there is none. Any transaction that may
-- still commit an event has an xid at or above it, so the events a reader has taken form a
-- prefix that later commits never punch holes into. Transactions that cannot write events are
-- left out so they cannot stall delivery: those of other databases, and those of sessions not
-- named 'workengine' (every WorkEngine pool connection is; nothing else may write task_events).
-- A WorkEngine write transaction delays delivery until it ends; none is ever skipped.

-- include: event_position
-- The high bits of the positions of the events this transaction records.
(pg_current_xact_id()::text::bigint << 20)

-- include: watermark
-- Every position below it is final: no transaction still running can commit one there.
(COALESCE(
    (SELECT min(running.xid::text::bigint)
     FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
     WHERE xid(running.xid) NOT IN (
         SELECT backend_xid FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL
           AND (datname IS DISTINCT FROM current_database() OR application_name <> 'workengine'))),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint) << 20)

-- include: changed_event
-- The CTE `event`: the transaction's :seq-th event, for the one task in the CTE `changed`,
-- with the task's status, attempt and percent right after the change, and a progress report's ETA.
event AS (
    INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                             message, metadata, estimated_completion_at)
    SELECT {{event_position}} + :seq, id, orchestrator_id, workspace_id, :event_kind, status, attempt,
           progress, :event_message, CAST(:event_metadata AS jsonb),
           CASE WHEN :event_kind = 'PROGRESS' THEN estimated_completion_at END
    FROM changed
    RETURNING position AS event_position, occurred_at AS event_time
)

-- include: numbered_moves
-- The CTE `numbered`: the tasks of the CTE `moved`, each with the position of its event,
-- numbered from this transaction's :seq-th event in id order.
numbered AS (
    SELECT moved.*, {{event_position}} + :seq + row_number() OVER (ORDER BY id) - 1 AS event_position
    FROM moved
)

-- include: moved_events
-- The CTE `events`: one :event_kind event per task of `numbered`. It runs to completion though
-- nothing reads it; statements return `numbered`, not a join of the two: PostgreSQL 15
-- estimates both CTEs at one row and nested-loops them, O(tasks^2).
events AS (
    INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                             message)
    SELECT event_position, id, orchestrator_id, workspace_id, :event_kind, status, attempt, progress,
           :event_message
    FROM numbered
)

-- name: insert_event
INSERT INTO task_events (position, task_id, orchestrator_id, workspace_id, kind, status, attempt, progress,
                         message, metadata)
VALUES ({{event_position}} + :seq, :task_id, :orchestrator_id, :workspace_id, :kind, :status, :attempt,
        :progress, :message, CAST(:metadata AS jsonb))
RETURNING position, occurred_at;

-- include: event_page
-- A page of the events of the CTE `page_events` (the statement's scope, after :after, below
-- the watermark): the first :limit in position order, each with its task as it is now, and
-- the log's head and pruning horizon on every row. The horizon is read in the same snapshot
-- as the page, so a concurrent prune cannot slip between the check and the read. One row with
-- NULL event columns when the page is empty, so head and pruned_through always come back.
SELECT log.head, log.pruned_through, page.*
FROM (SELECT (SELECT max(position) FROM task_events) AS head,
             (SELECT pruned_through FROM event_log) AS pruned_through) AS log
LEFT JOIN LATERAL (
    SELECT e.position AS event_position, e.kind AS event_kind, e.status AS event_status,
           e.attempt AS event_attempt, e.progress AS event_progress, e.message AS event_message,
           e.metadata AS event_metadata, e.occurred_at AS event_time,
           e.estimated_completion_at AS event_estimated_completion_at, t.*
    FROM page_events e JOIN tasks t ON t.id = e.task_id
    ORDER BY e.position
    LIMIT :limit
) AS page ON true
ORDER BY page.event_position

-- name: tail_events
-- Every scope: what the process-wide tailer fans out.
WITH page_events AS (
    SELECT * FROM task_events WHERE position > :after AND position < {{watermark}}
)
{{event_page}};

-- name: task_events_after
WITH page_events AS (
    SELECT * FROM task_events WHERE task_id = :scope_id AND position > :after AND position < {{watermark}}
)
{{event_page}};

-- name: orchestrator_events_after
WITH page_events AS (
    SELECT * FROM task_events
    WHERE orchestrator_id = :scope_id AND position > :after AND position < {{watermark}}
)
{{event_page}};

-- name: workspace_events_after
WITH page_events AS (
    SELECT * FROM task_events
    WHERE workspace_id = :scope_id AND position > :after AND position < {{watermark}}
)
{{event_page}};

-- name: all_events_after
-- Every task's (the dashboard's overview): the tailer's page, under the scope statements' name.
WITH page_events AS (
    SELECT * FROM task_events WHERE position > :after AND position < {{watermark}}
)
{{event_page}};

-- name: head_position
-- Where a tailer starting now begins: everything at or below it is final.
SELECT COALESCE(max(position), 0) AS position FROM task_events WHERE position < {{watermark}};

-- include: snapshot
-- The tasks of the CTE `scoped` (a scope's open tasks, or the one task) with the log position
-- they reflect, on every row (one row with NULL task columns when there is none): the last
-- position below the watermark, and the positions of the scope's events (the CTE
-- `scope_events`) committed above it yet already visible here: the snapshot shows their effect.
SELECT log.snapshot_position, log.seen_positions, t.*
FROM (SELECT GREATEST(COALESCE((SELECT max(position) FROM task_events WHERE position < mark.watermark), 0),
                      (SELECT pruned_through FROM event_log)) AS snapshot_position,
             ARRAY(SELECT position FROM scope_events WHERE position >= mark.watermark ORDER BY position)
                 AS seen_positions
      FROM (SELECT {{watermark}} AS watermark) AS mark) AS log
LEFT JOIN LATERAL (SELECT * FROM scoped) AS t ON true
ORDER BY t.created_at, t.id

-- name: task_snapshot
WITH scope_events AS (
    SELECT position FROM task_events WHERE task_id = :scope_id
), scoped AS (
    SELECT * FROM tasks WHERE id = :scope_id
)
{{snapshot}};

-- name: orchestrator_snapshot
WITH scope_events AS (
    SELECT position FROM task_events WHERE orchestrator_id = :scope_id
), scoped AS (
    SELECT * FROM tasks WHERE orchestrator_id = :scope_id AND status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
    ORDER BY created_at, id
    LIMIT :limit
)
{{snapshot}};

-- name: workspace_snapshot
WITH scope_events AS (
    SELECT position FROM task_events WHERE workspace_id = :scope_id
), scoped AS (
    SELECT * FROM tasks WHERE workspace_id = :scope_id AND status IN ('TODO', 'IN_PROGRESS', 'BLOCKED')
    ORDER BY created_at, id
    LIMIT :limit
)
{{snapshot}};

-- name: all_snapshot
-- Every task (the dashboard's overview): the running ones only, through their partial index
-- (tasks_lease_idx), however many finished or waiting tasks there are.
WITH scope_events AS (
    SELECT position FROM task_events
), scoped AS (
    SELECT * FROM tasks WHERE status = 'IN_PROGRESS'
    ORDER BY created_at, id
    LIMIT :limit
)
{{snapshot}};

-- name: try_lock_pruning
-- One pruner at a time across every process; the others skip their turn.
SELECT pg_try_advisory_xact_lock(hashtext('workengine.prune_events')) AS locked;

-- name: prune_events
-- Deletes the oldest events older than the cutoff, a batch at a time, strictly as a prefix of
-- the log (stopping at the first younger event), and records the highest position deleted.
WITH oldest AS MATERIALIZED (
    SELECT position, occurred_at FROM task_events
    WHERE position < {{watermark}}
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
