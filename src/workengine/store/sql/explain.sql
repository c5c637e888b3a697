-- ExplainSelection (engine/explain.py): the ready tasks ranked as claims take them, the tasks a
-- caller asks about, and the rank of a ready task beyond the ranking. Reads only.

-- name: explain_ranking
-- Up to :limit ready tasks, in the order repeated claims take them. A claim takes the head of
-- the best segment in ranked_segments' order (score, then the head's due time, priority, age
-- and id), and the next claim the head of what is left. Inside a segment the score and the
-- priority are constant and the rows are in (due_key, created_at, id) order, so the sequence of
-- claims is the merge of the segments by (score DESC, due_key, priority DESC, created_at, id):
-- the order below. A task behind :limit others of its own segment cannot be among the first
-- :limit, so each segment is read only that far: at most 16 index ranges of tasks_ready_idx,
-- whatever the backlog. Only the winners' rows are read whole.
WITH ranked AS MATERIALIZED (
    SELECT head.id, head.due_key, head.created_at, segment.priority, segment.weight, segment.boost,
           segment.weight * segment.boost AS score
    FROM ({{selection_segments}}) AS segment
    CROSS JOIN LATERAL (
        SELECT t.id, t.due_key, t.created_at FROM tasks t
        WHERE {{ready_in_segment}}
        ORDER BY t.due_key, t.created_at, t.id
        LIMIT :limit
    ) AS head
    ORDER BY score DESC, head.due_key, segment.priority DESC, head.created_at, head.id
    LIMIT :limit
)
SELECT t.*, ranked.weight, ranked.boost, ranked.score
FROM ranked JOIN tasks t ON t.id = ranked.id
ORDER BY ranked.score DESC, ranked.due_key, ranked.priority DESC, ranked.created_at, ranked.id;

-- name: explain_tasks
-- The tasks of :ids, each with up to :blocked_on_limit of its unfinished dependencies when it
-- waits on some (a dependency is met when DONE or CANCELLED; FAILED is not).
SELECT t.*, CASE WHEN t.unmet_dependency_count > 0 THEN ARRAY(
    SELECT d.depends_on_id FROM task_dependencies d JOIN tasks dependency ON dependency.id = d.depends_on_id
    WHERE d.task_id = t.id AND dependency.status NOT IN ('DONE', 'CANCELLED')
    ORDER BY d.depends_on_id
    LIMIT :blocked_on_limit) END AS unmet_dependency_ids
FROM tasks t WHERE t.id = ANY(CAST(:ids AS text[]));

-- name: explain_ranks
-- For each task of :ids that is ready and admitted by the criteria, how many ready tasks rank
-- ahead of it, counted up to :count_limit (the engine reports a task with that many ahead as
-- beyond the count). A task of another segment is ahead when its segment scores more; at an
-- equal score (another priority) when its due time is earlier, or equal and its priority higher;
-- in the target's own segment when it comes first in (due_key, created_at, id). Each case is a
-- row comparison `(due_key, created_at, id) < bound`, a range of tasks_ready_idx: infinity for
-- the whole segment, (due, infinity) for "due no later", (due, -infinity) for "due earlier".
-- Segments scoring less are skipped. The LIMITs stop the walk after :count_limit rows per target.
SELECT target.id, target.score, (
    SELECT count(*) FROM (
        SELECT FROM ({{selection_segments}}) AS segment
        CROSS JOIN LATERAL (
            SELECT FROM tasks t
            WHERE {{ready_in_segment}}
              AND (t.due_key, t.created_at, t.id) < (
                  CASE WHEN segment.weight * segment.boost > target.score THEN 'infinity'
                       ELSE target.due_key END,
                  CASE WHEN segment.weight * segment.boost > target.score
                         OR segment.priority > target.priority THEN 'infinity'
                       WHEN segment.priority = target.priority THEN target.created_at
                       ELSE '-infinity' END,
                  target.id)
            LIMIT :count_limit
        ) AS ahead
        WHERE segment.weight * segment.boost >= target.score
        LIMIT :count_limit
    ) AS counted
) AS ahead
FROM (
    SELECT t.id, t.priority, t.due_key, t.created_at, segment.weight * segment.boost AS score
    FROM ({{selection_segments}}) AS segment
    JOIN tasks t ON {{ready_in_segment}}
    WHERE t.id = ANY(CAST(:ids AS text[]))
) AS target;
