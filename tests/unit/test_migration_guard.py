"""The rolling-upgrade rule, checked statically (docs/development.md, "Migrations and rolling
upgrades"): the migrations added since the previous release (deploy/previous-release) only
expand, and those it shipped are never edited. Then the check itself: it catches the contract
steps this project's history took, and each kind of step, and lets a marked one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migration_guard import Migration, contract_steps
from tests.release import ROOT, VERSIONS, previous_release, released_migrations, tolerates_added_columns

MIGRATIONS = sorted((ROOT / VERSIONS).glob("[0-9]*.py"))


def test_the_migrations_since_the_previous_release_take_no_unmarked_contract_step() -> None:
    commit = previous_release()
    released = {Migration.parse(Path(p), c.decode()).revision for p, c in released_migrations(commit).items()}
    since = [migration for migration in map(Migration.read, MIGRATIONS) if migration.revision not in released]
    breaks = not tolerates_added_columns(commit)
    findings = [str(f) for migration in since for f in contract_steps(migration, added_columns_break=breaks)]
    assert findings == [], (
        f"the previous release ({commit[:7]}) runs beside these migrations during a rolling upgrade; "
        "expand now and contract in a later release, or mark a step that is safe with "
        "'-- contract: <reason>' (docs/development.md, 'Migrations and rolling upgrades'):\n"
        + "\n".join(findings)
    )


def test_the_previous_release_s_migrations_are_not_edited() -> None:
    """Databases ran them as released: an edit reaches no database, and only misleads."""
    released = released_migrations(previous_release())
    assert released
    for path, content in released.items():
        assert (ROOT / path).exists(), f"{path} was deleted"
        assert (ROOT / path).read_bytes() == content, f"{path} was edited since the previous release"


def steps(path: Path, *, added_columns_break: bool = False) -> list[str]:
    migration = Migration.read(path)
    return [f.operation for f in contract_steps(migration, added_columns_break=added_columns_break)]


def test_the_guard_catches_the_contract_steps_of_this_project_s_history() -> None:
    by_name = {path.name[:4]: path for path in MIGRATIONS}
    assert steps(by_name["0002"]) == ["RENAME", "DROP", "DROP"]  # task_events.cursor -> position
    assert steps(by_name["0003"]) == ["ADD CONSTRAINT", "CREATE UNIQUE INDEX"]
    assert steps(by_name["0006"]) == ["DROP"]  # tasks.due_key made again
    # 0003 and 0006 also added columns to tasks, which a release before row_type_changed fails on.
    assert len(steps(by_name["0003"], added_columns_break=True)) == 2 + 9
    assert steps(by_name["0001"]) == steps(by_name["0004"]) == steps(by_name["0005"]) == []


TEMPLATE = '''"""A migration. Its prose may say DROP COLUMN: only what upgrade() runs counts."""

from alembic import op
import sqlalchemy as sa

revision = "9001"
down_revision = "0007"
SCHEMA = """{sql}"""


def upgrade() -> None:
    """Neither does this docstring: DROP TABLE tasks."""
    op.execute(SCHEMA)
    {python}


def downgrade() -> None:
    op.execute("DROP TABLE audit; ALTER TABLE tasks DROP COLUMN note")
'''
REASON = "-- contract: tasks.title unused since release 0.3.0, whose replicas are all gone\n"


@pytest.mark.parametrize(
    ("sql", "python", "expected"),
    [
        ("ALTER TABLE tasks ADD COLUMN note text", "", []),
        ("ALTER TABLE tasks ADD COLUMN note text NOT NULL DEFAULT ''", "", []),
        ("ALTER TABLE tasks ADD COLUMN n numeric(10,2) NOT NULL", "",
         ["ADD COLUMN N NOT NULL without DEFAULT"]),
        ("ALTER TABLE tasks ALTER COLUMN result DROP NOT NULL", "", []),
        ("CREATE INDEX tasks_note_idx ON tasks (note)", "", []),
        ("ALTER TYPE status ADD VALUE 'PAUSED'", "", []),
        ("CREATE TABLE audit (id text); CREATE UNIQUE INDEX a_idx ON audit (id);"
         " ALTER TABLE audit ADD CONSTRAINT a_ck CHECK (id <> ''), ADD COLUMN b text NOT NULL", "", []),
        ("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DROP TABLE x; RETURN NULL; END $$",
         "", []),
        ("ALTER TABLE tasks DROP COLUMN title", "", ["DROP"]),
        (REASON + "ALTER TABLE tasks DROP COLUMN title", "", []),
        ("-- contract: later\nALTER TABLE tasks DROP COLUMN title", "", ["DROP"]),  # a reason, not a word
        ("ALTER TABLE tasks RENAME COLUMN title TO name", "", ["RENAME"]),
        ("ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200)", "", ["ALTER ... TYPE"]),
        ("ALTER TABLE tasks ALTER COLUMN channel_id SET NOT NULL", "", ["SET NOT NULL"]),
        ("ALTER TABLE tasks ADD CONSTRAINT t_ck CHECK (progress < 100)", "", ["ADD CONSTRAINT"]),
        ("CREATE UNIQUE INDEX t_idx ON tasks (title)", "", ["CREATE UNIQUE INDEX"]),
        ("CREATE OR REPLACE FUNCTION execution_time_bucket(s double precision) RETURNS smallint"
         " LANGUAGE sql AS $$ SELECT 0::smallint $$", "", ["CREATE OR REPLACE"]),
        ("TRUNCATE task_events", "", ["TRUNCATE"]),
        ("", 'op.drop_column("tasks", "title")', ["op.drop_column"]),
        ("", '# contract: tasks.title unused since release 0.3.0\n    op.drop_column("tasks", "title")', []),
        ("", 'op.add_column("tasks", sa.Column("n", sa.Text(), nullable=False))',
         ["op.add_column NOT NULL without server_default"]),
        ("", 'op.alter_column("tasks", "title", new_column_name="name")',
         ["op.alter_column"]),
        ("", 'op.create_table("audit", sa.Column("id", sa.Text()))\n    op.drop_column("audit", "id")', []),
    ],
)  # fmt: skip
def test_the_guard_flags_each_kind_of_contract_step_and_passes_what_expands(
    tmp_path: Path, sql: str, python: str, expected: list[str]
) -> None:
    path = tmp_path / "9001_example.py"
    path.write_text(TEMPLATE.format(sql=sql, python=python))
    assert steps(path) == expected


def test_a_column_added_to_an_existing_table_is_a_contract_step_while_the_previous_release_fails_on_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "9001_example.py"
    sql = "CREATE TABLE audit (id text); ALTER TABLE audit ADD COLUMN a text; "
    sql += "ALTER TABLE tasks ADD COLUMN b text"
    path.write_text(TEMPLATE.format(sql=sql, python=""))
    assert steps(path) == []
    assert steps(path, added_columns_break=True) == ["ADD COLUMN B to an existing table"]
