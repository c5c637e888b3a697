"""Loads the named statements of sql/queries.sql once.

`-- name: x` starts statement x; `-- part: y` starts a piece of SQL that statements (and other
parts) share by writing `/*part: y*/` where it belongs. Parameters are written `:name` (as
SQLAlchemy's text() reads them) and compiled once to psycopg's `%(name)s`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

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


@cache
def _all() -> dict[str, str]:
    return {name: to_psycopg(sql) for name, sql in _sources().items()}


def source(name: str) -> str:
    """The statement's SQL text, e.g. for EXPLAIN."""
    return _sources()[name]


def query(name: str) -> str:
    """The statement in psycopg's parameter style, ready to execute (and to prepare)."""
    return _all()[name]
