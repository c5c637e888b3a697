"""Execution history: what a task's context recalls of past attempts, and the ETA of progress.

Each attempt row learns what groups it with similar work (its task's orchestrator, workspace and
tag set, as `tag_set_key`), what its result said (`output_excerpt`) and the daemon's `lessons`.
Three partial indexes over the attempts that ended with a verdict on the work (COMPLETED, FAILED,
LEASE_EXPIRED), newest last, let a context read the few most recent attempts of each similarity
group (docs/history.md) as a bounded index walk, however long the history grows. A task carries
the ETA of its latest progress report, and a PROGRESS event the ETA it was reported with.

Expand only (docs/development.md, "Migrations and rolling upgrades"): new nullable or defaulted
columns, a function, a trigger and indexes. The previous release (8bd721f) runs its statements
again when a column added to `tasks` changes their rows (`row_type_changed`); it inserts attempts
without the grouping columns, which the trigger fills in (it fires only for such rows).

Short locks: the whole migration is one transaction, and an ALTER TABLE holds its table's
exclusive lock until the commit. So `tasks` and `task_events`, which every call reads, are
altered last; the attempts already recorded are not grouped here (a full-table UPDATE under that
lock would stall every replica for seconds per million attempts) but afterwards, in batches, by
the servers' `attempt grouping` duty (store/sql/history.sql, group_attempts), through
`task_attempts_ungrouped_idx`, which holds only attempts still to group. The indexes over
grouped attempts start empty, so building them takes one pass over the table.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


# The rows of the similarity indexes: attempts with a verdict on the work, grouped. The
# statements that read them repeat it word for word (sql/history.sql, `verdict`).
VERDICT = "outcome IN ('COMPLETED', 'FAILED', 'LEASE_EXPIRED') AND tag_key IS NOT NULL"


def upgrade() -> None:
    op.execute(
        """
        -- The tag set, order and repeats aside, as one indexable value: the hash of the sorted
        -- distinct tags' array text, where quoting keeps every set's text apart. COLLATE "C":
        -- the sort, and so the key, must not change with the database's collation.
        CREATE FUNCTION tag_set_key(tags text[]) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT md5(CAST(ARRAY(
                SELECT DISTINCT tag COLLATE "C" FROM unnest(tags) AS tag ORDER BY 1) AS text))
        $$;

        ALTER TABLE task_attempts
            ADD COLUMN orchestrator_id text,
            ADD COLUMN workspace_id    text,
            ADD COLUMN tag_key         text,
            ADD COLUMN output_excerpt  text NOT NULL DEFAULT '',
            ADD COLUMN lessons         text[] NOT NULL DEFAULT '{}',
            -- Whether the attempt's ETAs blend the estimate of similar work; false when its start
            -- asked for none (history_limit 0): they follow its own rate alone.
            ADD COLUMN estimated       boolean NOT NULL DEFAULT true;

        CREATE FUNCTION task_attempts_grouping() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            SELECT t.orchestrator_id, t.workspace_id, tag_set_key(t.tags)
            INTO NEW.orchestrator_id, NEW.workspace_id, NEW.tag_key
            FROM tasks t WHERE t.id = NEW.task_id;
            RETURN NEW;
        END $$;
        -- Only rows inserted without their grouping (by the previous release): this release's
        -- inserts name it, and the WHEN spares them the call.
        CREATE TRIGGER task_attempts_grouping BEFORE INSERT ON task_attempts
            FOR EACH ROW WHEN (NEW.tag_key IS NULL) EXECUTE FUNCTION task_attempts_grouping();

        -- The attempts recorded before this migration, until the grouping duty has grouped
        -- them; empty from then on.
        CREATE INDEX task_attempts_ungrouped_idx ON task_attempts (task_id, attempt) WHERE tag_key IS NULL;
        CREATE INDEX task_attempts_similar_idx
            ON task_attempts (orchestrator_id, workspace_id, tag_key, ended_at) WHERE {verdict};
        CREATE INDEX task_attempts_orchestrator_idx
            ON task_attempts (orchestrator_id, workspace_id, ended_at) WHERE {verdict};
        CREATE INDEX task_attempts_workspace_idx ON task_attempts (workspace_id, ended_at) WHERE {verdict};

        -- Last: from here to the commit, nothing reads these two.
        ALTER TABLE tasks ADD COLUMN estimated_completion_at timestamptz;
        ALTER TABLE task_events ADD COLUMN estimated_completion_at timestamptz;
        """.replace("{verdict}", VERDICT)
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER task_attempts_grouping ON task_attempts;
        DROP FUNCTION task_attempts_grouping();
        DROP INDEX task_attempts_similar_idx, task_attempts_orchestrator_idx, task_attempts_workspace_idx,
            task_attempts_ungrouped_idx;
        ALTER TABLE task_events DROP COLUMN estimated_completion_at;
        ALTER TABLE tasks DROP COLUMN estimated_completion_at;
        ALTER TABLE task_attempts DROP COLUMN orchestrator_id, DROP COLUMN workspace_id, DROP COLUMN tag_key,
            DROP COLUMN output_excerpt, DROP COLUMN lessons, DROP COLUMN estimated;
        DROP FUNCTION tag_set_key(text[]);
        """
    )
