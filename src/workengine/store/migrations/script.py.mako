"""${message}

What it changes and why. Then how the previous release's replicas, which run beside this
migration during a rolling upgrade, survive it: "additive: ..." (expand), or the release since
which nothing uses what it removes, with each such statement marked `-- contract: <reason>`
(docs/development.md, "Migrations and rolling upgrades").

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
