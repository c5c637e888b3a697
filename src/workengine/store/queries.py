"""Loads the named statements of sql/queries.sql once.

`-- name: x` starts statement x; `-- part: y` starts a piece of SQL that statements (and other
parts) share by writing `/*part: y*/` where it belongs. Parameters are written `:name` (as
SQLAlchemy's text() reads them) and compiled once to PostgreSQL's own `$1`, `$2`... (run
through psycopg's raw cursors, which send the text as it is: psycopg's `%(name)s` form is parsed
again on every execution of a statement longer than 4 KB, and the claim is one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

_SECTION = re.compile(r"^-- (name|part): (\w+)\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"/\*part: (\w+)\*/")
# A bind parameter as SQLAlchemy's text() finds one: not part of a "::type" cast.
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def parse(source: str) -> dict[str, str]:
    """The statements by name, with the parts they include written out."""
    pieces = _SECTION.split(source)
    # pieces = [preamble, kind1, name1, body1, kind2, name2, body2, ...]
    sections = zip(pieces[1::3], pieces[2::3], pieces[3::3], strict=True)
    statements: dict[str, str] = {}
    parts: dict[str, str] = {}
    for kind, name, body in sections:
        (statements if kind == "name" else parts)[name] = body.strip().rstrip(";")

    def expand(sql: str) -> str:
        return _INCLUDE.sub(lambda include: expand(parts[include[1]]), sql)

    return {name: expand(sql) for name, sql in statements.items()}


@cache
def _sources() -> dict[str, str]:
    return parse((resources.files("workengine.store") / "sql" / "queries.sql").read_text())


def to_psycopg(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`, literal percent signs doubled."""
    return _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))


class Positional(NamedTuple):
    """A statement with `$n` parameters: `names[n - 1]` is the name of `$n`."""

    sql: str
    names: tuple[str, ...]

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


def to_positional(sql: str) -> Positional:
    """`:name` parameters as `$n`, numbered by first appearance; a repeated name reuses its number."""
    names: dict[str, int] = {}

    def number(found: re.Match[str]) -> str:
        return f"${names.setdefault(found[1], len(names) + 1)}"

    text = _PARAMETER.sub(number, sql)
    return Positional(text, tuple(names))


@cache
def _all() -> dict[str, str]:
    return {name: to_psycopg(sql) for name, sql in _sources().items()}


@cache
def _all_positional() -> dict[str, Positional]:
    return {name: to_positional(sql) for name, sql in _sources().items()}


def source(name: str) -> str:
    """The statement's SQL text, e.g. for EXPLAIN."""
    return _sources()[name]


def query(name: str) -> str:
    """The statement in psycopg's parameter style (for tools: EXPLAIN, benchmarks)."""
    return _all()[name]


def positional(name: str) -> Positional:
    """The statement as the engine runs it (and psycopg prepares it)."""
    return _all_positional()[name]
