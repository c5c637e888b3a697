"""Orchestrator tokens: per-orchestrator bearer tokens, stored only as their sha256.

RegisterOrchestrator issues one and RotateOrchestratorToken replaces them; the secret itself is
shown once and never stored. `revoked_at` is when a token stops working: set by a revocation
(now) or a rotation (now, or later when the rotation leaves the old token a grace period).
Looked up by hash on every authenticated call, hence the hash is the primary key.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE orchestrator_tokens (
            token_hash       text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
            orchestrator_id  text NOT NULL REFERENCES orchestrators (id) ON DELETE CASCADE,
            created_at       timestamptz NOT NULL DEFAULT now(),
            expires_at       timestamptz,
            revoked_at       timestamptz
        );
        CREATE INDEX orchestrator_tokens_orchestrator_idx ON orchestrator_tokens (orchestrator_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE orchestrator_tokens;")
