"""Loads the named statements of sql/queries.sql once (`-- name: x` starts statement x)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from sqlalchemy import TextClause, text

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(source: str) -> dict[str, str]:
    parts = _NAME.split(source)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def _sources() -> dict[str, str]:
    return parse((resources.files("workengine.store") / "sql" / "queries.sql").read_text())


@cache
def _all() -> dict[str, TextClause]:
    return {name: text(sql) for name, sql in _sources().items()}


def source(name: str) -> str:
    """The statement's SQL text, e.g. for EXPLAIN."""
    return _sources()[name]


def query(name: str) -> TextClause:
    return _all()[name]
