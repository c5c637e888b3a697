"""The named SQL statements of sql/*.sql, loaded once.

In a file, `-- name: x` starts statement x and `-- include: y` starts y, a piece that statements
share by writing `{{y}}` where it belongs. An include is a whole, balanced piece of SQL: an
expression, one CTE (`name AS (...)`) or a whole query. Comments are removed before anything
else, so nothing in a comment is ever sent or numbered. Parameters are written `:name` and
compiled once to PostgreSQL's own `$1`, `$2`... (numbered by first appearance; a repeated name
reuses its number): psycopg's raw cursors send that text as it is, where its `%(name)s` form is
parsed again on every execution of a statement longer than 4 KB, and the claim is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

_SECTION = re.compile(r"^-- (name|include): (\w+)[ \t]*$", re.MULTILINE)
_INCLUDE = re.compile(r"\{\{(\w+)\}\}")
# Quoted text is kept as it is; comments and `:name` parameters are only looked for outside it.
_QUOTED = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""
_COMMENTS = re.compile(rf"{_QUOTED}|--[^\n]*|/\*.*?\*/", re.DOTALL)
# A parameter: not a `::type` cast, nor the `:` of an array slice like `a[1:2]`.
_PARAMETERS = re.compile(rf"{_QUOTED}|::|(?<!\w):(\w+)")


class SqlFile(NamedTuple):
    """One file's statements and includes, by name, comments removed."""

    statements: dict[str, str]
    includes: dict[str, str]


def strip_comments(sql: str) -> str:
    without = _COMMENTS.sub(lambda found: found[0] if found[0][0] in "'\"" else "", sql)
    lines = (line.rstrip() for line in without.splitlines())
    return "\n".join(line for line in lines if line).strip().rstrip(";").rstrip()


def parse(source: str) -> SqlFile:
    pieces = _SECTION.split(source)
    # pieces = [preamble, kind1, name1, body1, kind2, name2, body2, ...]
    parsed = SqlFile({}, {})
    for kind, name, body in zip(pieces[1::3], pieces[2::3], pieces[3::3], strict=True):
        found = parsed.statements if kind == "name" else parsed.includes
        if name in found:
            raise ValueError(f"{'statement' if kind == 'name' else kind} {name} is defined twice")
        found[name] = strip_comments(body)
    return parsed


def expand(sql: str, includes: Mapping[str, str], within: tuple[str, ...] = ()) -> str:
    """`sql` with every `{{name}}` replaced by its include, itself expanded."""

    def include(found: re.Match[str]) -> str:
        name = found[1]
        if name in within:
            raise ValueError(f"include {name} includes itself: {' -> '.join((*within, name))}")
        if name not in includes:
            raise ValueError(f"include {name} is not defined")
        return expand(includes[name], includes, (*within, name))

    return _INCLUDE.sub(include, sql)


def combine(files: Mapping[str, SqlFile]) -> dict[str, str]:
    """Every statement of every file, includes written out. Names are unique across files."""
    includes: dict[str, str] = {}
    statements: dict[str, str] = {}
    for file_name, parsed in files.items():
        for kind, names, into in (
            ("include", parsed.includes, includes),
            ("statement", parsed.statements, statements),
        ):
            for name in names:
                if name in into:
                    raise ValueError(f"{kind} {name} of {file_name} is defined in another file too")
            into.update(names)
    return {name: expand(sql, includes) for name, sql in statements.items()}


class Statement(NamedTuple):
    """A statement with `$n` parameters: `names[n - 1]` is the name of `$n`."""

    sql: str
    names: tuple[str, ...]

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


def to_positional(sql: str) -> Statement:
    numbers: dict[str, int] = {}

    def number(found: re.Match[str]) -> str:
        if found[1] is None:
            return found[0]  # quoted text or a `::type` cast
        return f"${numbers.setdefault(found[1], len(numbers) + 1)}"

    return Statement(_PARAMETERS.sub(number, sql), tuple(numbers))


def to_psycopg(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`, literal percent signs doubled (for tools)."""
    escaped = sql.replace("%", "%%")
    return _PARAMETERS.sub(lambda found: found[0] if found[1] is None else f"%({found[1]})s", escaped)


@cache
def sql_files() -> dict[str, SqlFile]:
    folder = resources.files("workengine.store") / "sql"
    return {
        entry.name: parse(entry.read_text())
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if entry.name.endswith(".sql")
    }


@cache
def _sources() -> dict[str, str]:
    return combine(sql_files())


@cache
def _positional() -> dict[str, Statement]:
    return {name: to_positional(sql) for name, sql in _sources().items()}


def source(name: str) -> str:
    """The statement's SQL with `:name` parameters (for EXPLAIN, pgbench scripts)."""
    return _sources()[name]


def query(name: str) -> str:
    """The statement in psycopg's parameter style (for tools: EXPLAIN, benchmarks)."""
    return to_psycopg(_sources()[name])


def statement(name: str) -> Statement:
    """The statement as the engine runs it (and psycopg prepares it)."""
    return _positional()[name]
