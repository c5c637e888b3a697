-- Orchestrators and their tokens.
-- Array and JSON parameters use CAST(:x AS type); ":x::type" would read as a parameter named x.

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
