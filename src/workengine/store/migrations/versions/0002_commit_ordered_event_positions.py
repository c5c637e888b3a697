"""Event positions in commit order, and a pruning horizon for the event log.

`task_events.cursor` was a bigserial taken at insert, so an event whose transaction
committed after a later-numbered one could be skipped by a subscriber resuming from that
later number. A position is now `(xid << 20) + n`: the writing transaction's id in the high
bits and its n-th event in the low 20. Readers only take positions below the watermark
`xmin(current snapshot) << 20`, and every transaction that can still commit an event has an
id at or above that xmin, so what a reader has taken is a prefix that never grows holes.

`event_log.pruned_through` is the highest position retention has deleted: a resume cursor
below it would silently skip pruned events, so it is refused with OUT_OF_RANGE.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE task_events RENAME COLUMN cursor TO position;
        ALTER TABLE task_events ALTER COLUMN position DROP DEFAULT;
        DROP SEQUENCE task_events_cursor_seq;
        CREATE TABLE event_log (
            singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            pruned_through  bigint NOT NULL DEFAULT 0
        );
        INSERT INTO event_log DEFAULT VALUES;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE event_log;
        CREATE SEQUENCE task_events_cursor_seq OWNED BY task_events.position;
        SELECT setval('task_events_cursor_seq', GREATEST((SELECT max(position) FROM task_events), 1));
        ALTER TABLE task_events ALTER COLUMN position SET DEFAULT nextval('task_events_cursor_seq');
        ALTER TABLE task_events RENAME COLUMN position TO cursor;
        """
    )
