"""The named-statement loader: statements by name, shared parts written out where included."""

from __future__ import annotations

from workengine.store import queries

SOURCE = """-- preamble
-- part: ready
status = 'TODO' AND /*part: mine*/

-- part: mine
owner = :owner

-- name: count_ready
SELECT count(*) FROM tasks WHERE /*part: ready*/;

-- name: get_task
SELECT * FROM tasks WHERE id = :id;
"""


def test_statements_are_found_by_name_and_parts_are_not_statements() -> None:
    assert set(queries.parse(SOURCE)) == {"count_ready", "get_task"}


def test_parts_are_written_out_where_included_even_inside_other_parts() -> None:
    statements = queries.parse(SOURCE)
    assert statements["count_ready"] == "SELECT count(*) FROM tasks WHERE status = 'TODO' AND owner = :owner"
    assert statements["get_task"] == "SELECT * FROM tasks WHERE id = :id"


def test_no_shipped_statement_is_left_with_an_include() -> None:
    for name in ("select_next_task", "claim_next_task"):
        assert "/*part:" not in queries.source(name)
        assert "t.status = 'TODO'" in queries.source(name)


def test_positional_parameters_are_numbered_by_first_appearance_and_reuse_their_number() -> None:
    statement = queries.to_positional("SELECT :b, :a, CAST(:b AS int), y::text WHERE x = '50%'")

    assert statement.sql == "SELECT $1, $2, CAST($1 AS int), y::text WHERE x = '50%'"
    assert statement.names == ("b", "a")
    assert statement.values({"a": 1, "b": 2, "unused": 3}) == [2, 1]
