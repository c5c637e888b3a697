"""The named-statement loader, and the shipped SQL files it loads."""

from __future__ import annotations

import re

import pytest

from workengine.store import statements

SOURCE = """-- preamble, ignored
-- include: ready
(status = 'TODO' AND {{mine}})

-- include: mine
(owner = :owner) -- a :comment_parameter is not a parameter

-- name: count_ready
-- :first in a comment must not decide the order
SELECT count(*) FROM tasks WHERE {{ready}} AND kind = :kind;

-- name: get_task
SELECT * FROM tasks WHERE id = :id AND note = '-- not a comment :nor_a_parameter';
"""


def load(source: str) -> dict[str, str]:
    return statements.combine({"test.sql": statements.parse(source)})


def test_statements_are_found_by_name_and_includes_are_not_statements() -> None:
    assert set(load(SOURCE)) == {"count_ready", "get_task"}


def test_includes_are_written_out_where_used_even_inside_other_includes() -> None:
    found = load(SOURCE)
    assert (
        found["count_ready"]
        == "SELECT count(*) FROM tasks WHERE (status = 'TODO' AND (owner = :owner)) AND kind = :kind"
    )


def test_comments_are_removed_before_parameters_are_numbered_and_quoted_text_is_kept() -> None:
    found = load(SOURCE)
    count = statements.to_positional(found["count_ready"])
    assert count.names == ("owner", "kind")
    get = statements.to_positional(found["get_task"])
    assert get.names == ("id",)
    assert get.sql.endswith("note = '-- not a comment :nor_a_parameter'")


def test_positional_parameters_are_numbered_by_first_appearance_and_reuse_their_number() -> None:
    statement = statements.to_positional("SELECT :b, :a, CAST(:b AS int), y::text, a[1:2] WHERE x = '50%'")

    assert statement.sql == "SELECT $1, $2, CAST($1 AS int), y::text, a[1:2] WHERE x = '50%'"
    assert statement.names == ("b", "a")
    assert statement.values({"a": 1, "b": 2, "unused": 3}) == [2, 1]


def test_psycopg_form_doubles_percent_signs() -> None:
    assert statements.to_psycopg("SELECT :a WHERE x LIKE '5%'") == "SELECT %(a)s WHERE x LIKE '5%%'"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("-- name: a\nSELECT {{missing}};", "include missing is not defined"),
        (
            "-- include: x\n({{y}})\n-- include: y\n({{x}})\n-- name: a\nSELECT {{x}};",
            "includes itself: x -> y -> x",
        ),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "statement a is defined twice"),
    ],
)
def test_a_broken_file_is_refused_with_what_is_wrong(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        load(source)


def test_a_name_defined_in_two_files_is_refused() -> None:
    one = statements.parse("-- name: a\nSELECT 1;")
    with pytest.raises(ValueError, match="defined in another file"):
        statements.combine({"one.sql": one, "two.sql": one})


# The shipped files


def _balanced(sql: str) -> bool:
    depth = 0
    for character in re.sub(r"'(?:[^']|'')*'", "''", sql):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            return False
    return depth == 0


CLAUSE_WORDS = re.compile(
    r"^(WHERE|AND|OR|ORDER|GROUP|HAVING|LIMIT|SET|FROM|ON|JOIN|UNION|RETURNING)\b", re.I
)


def test_every_shipped_statement_loads_with_its_includes_resolved() -> None:
    for name in statements._sources():
        sql = statements.source(name)
        assert "{{" not in sql and "--" not in sql, name
        assert _balanced(sql), name


def test_every_shipped_include_is_a_whole_balanced_piece_and_is_used() -> None:
    files = statements.sql_files()
    includes = {name: body for parsed in files.values() for name, body in parsed.includes.items()}
    text = "\n".join(
        body for parsed in files.values() for body in (*parsed.statements.values(), *parsed.includes.values())
    )
    for name, body in includes.items():
        assert _balanced(body), f"include {name} opens a bracket it does not close (or the reverse)"
        assert not CLAUSE_WORDS.match(body), f"include {name} starts in the middle of a clause"
        assert not re.search(r"\b(AND|OR|WHERE|BY|SET|FROM|,)\s*$", body, re.I), f"include {name} ends open"
        assert f"{{{{{name}}}}}" in text, f"include {name} is never used"


def test_every_parameter_of_a_shipped_statement_is_numbered_once() -> None:
    for name in statements._sources():
        statement = statements.statement(name)
        assert len(set(statement.names)) == len(statement.names), name
        assert not re.search(r"(?<![:\w]):[a-z_]+", re.sub(r"'(?:[^']|'')*'", "", statement.sql)), name
