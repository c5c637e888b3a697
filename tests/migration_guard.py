"""Finds what a migration's upgrade() does that the previous release's replicas, running beside
it on the migrated database, could not survive: the contract steps of docs/development.md
("Migrations and rolling upgrades"). A static check, so it errs on the side of flagging: a
flagged statement that is safe says why in a marker, `-- contract: <reason>` inside its SQL
statement, or `# contract: <reason>` on (or just above) the line of an `op.` call.

It reads what upgrade() can reach: its own body, and the module's constants and functions it
names (so `op.execute(SCHEMA)` is read through SCHEMA); never downgrade(), docstrings or SQL
comments. A statement about a table the same migration creates is exempt: no previous release
knows that table.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"(?:--|#)\s*contract:\s*(.*)")
MIN_REASON = 10  # characters: a reason, not a placeholder

# SQL that takes away, or tightens, what the previous release relies on: a dropped, renamed or
# retyped object; a constraint (or unique index) its writes may break; a function or view it runs,
# replaced; rows removed. Matched on a statement with its comments, string literals and
# dollar-quoted bodies removed, upper-cased. Besides these: a column added NOT NULL without a
# default (its inserts do not name it), and, while the previous release fails on it, any column
# added to an existing table (see `contract_steps`).
CONTRACT_SQL = {
    "DROP": re.compile(r"\bDROP\b(?!\s+NOT\s+NULL)"),  # DROP NOT NULL relaxes: allowed
    "RENAME": re.compile(r"\bRENAME\b"),
    "ALTER ... TYPE": re.compile(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b"),
    "SET NOT NULL": re.compile(r"\bSET\s+NOT\s+NULL\b"),
    "ADD CONSTRAINT": re.compile(
        r"\bADD\s+(?:CONSTRAINT|PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|EXCLUDE)\b"
    ),
    "CREATE UNIQUE INDEX": re.compile(r"\bCREATE\s+UNIQUE\s+INDEX\b"),
    "CREATE OR REPLACE": re.compile(r"\bCREATE\s+OR\s+REPLACE\b"),
    "TRUNCATE": re.compile(r"^TRUNCATE\b"),  # not a trigger's AFTER TRUNCATE
}
TARGET = re.compile(
    r"^(?:ALTER\s+TABLE|DROP\s+TABLE|TRUNCATE(?:\s+TABLE)?|CREATE\s+UNIQUE\s+INDEX\s+(?:CONCURRENTLY\s+)?"
    r"(?:IF\s+NOT\s+EXISTS\s+)?\w*\s+ON)\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?(\w+)"
)
CREATED = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)

# op.* calls that contract; the argument that names their table (None: they all contract).
CONTRACT_OPS = {
    "drop_column": 0, "drop_table": 0, "rename_table": 0, "drop_index": None,
    "drop_constraint": 1, "create_unique_constraint": 1, "create_check_constraint": 1,
    "create_foreign_key": 1, "create_primary_key": 1, "batch_alter_table": 0,
}  # fmt: skip
ALTER_COLUMN_CONTRACTS = {"type_", "new_column_name", "server_default"}


@dataclass(frozen=True)
class Finding:
    migration: str
    operation: str
    where: str  # the statement or call, shortened

    def __str__(self) -> str:
        return f"{self.migration}: {self.operation}: {self.where}"


@dataclass(frozen=True)
class Migration:
    path: Path
    revision: str
    tree: ast.Module
    source: str

    @classmethod
    def read(cls, path: Path) -> Migration:
        return cls.parse(path, path.read_text())

    @classmethod
    def parse(cls, path: Path, source: str) -> Migration:
        tree = ast.parse(source)
        revisions = [
            node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "revision" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ]
        assert len(revisions) == 1, f"{path.name}: no `revision = ...`"
        return cls(path, str(revisions[0]), tree, source)


def reachable(tree: ast.Module, start: str = "upgrade") -> list[ast.AST]:
    """upgrade() and the module-level constants and functions it names, transitively."""
    definitions: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            definitions[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    assert start in definitions, f"no {start}()"
    found: list[ast.AST] = []
    pending = [start]
    seen = set(pending)
    while pending:
        definition = definitions[pending.pop()]
        found.append(definition)
        for name in ast.walk(definition):
            if isinstance(name, ast.Name) and name.id in definitions and name.id not in seen:
                seen.add(name.id)
                pending.append(name.id)
    return found


def docstrings(nodes: list[ast.AST]) -> set[int]:
    """ids of the docstring constants under `nodes`: prose, not SQL."""
    ids = set()
    for node in nodes:
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef) and inner.body:
                first = inner.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    ids.add(id(first.value))
    return ids


def sql_texts(nodes: list[ast.AST]) -> list[str]:
    """Every string upgrade() can reach; in an f-string, `?` stands for each value put in."""
    skip = docstrings(nodes)
    texts = []
    for node in nodes:
        for inner in ast.walk(node):
            if isinstance(inner, ast.JoinedStr):
                parts = [p.value if isinstance(p, ast.Constant) else "?" for p in inner.values]
                texts.append("".join(str(part) for part in parts))
                skip.update(id(p) for p in inner.values)
            elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) and id(inner) not in skip:
                texts.append(inner.value)
    return texts


def statements(sql: str) -> list[str]:
    """`sql` split at its top-level semicolons; each piece keeps the comments before it."""
    pieces, start, i = [], 0, 0
    while i < len(sql):
        if sql.startswith("--", i):
            i = _end_of(sql, "\n", i)
        elif sql[i] == "'":
            i = _end_of(sql, "'", i + 1)
        elif match := re.match(r"\$\w*\$", sql[i:]):
            i = _end_of(sql, match.group(), i + len(match.group()))
        elif sql[i] == ";":
            pieces.append(sql[start:i])
            start = i = i + 1
        else:
            i += 1
    pieces.append(sql[start:])
    return [piece for piece in pieces if bare(piece)]


def _end_of(sql: str, closing: str, start: int) -> int:
    found = sql.find(closing, start)
    return len(sql) if found < 0 else found + len(closing)


def bare(statement: str) -> str:
    """The statement without comments, string literals and dollar-quoted bodies, upper-cased,
    on one line."""
    text = re.sub(r"--[^\n]*", " ", statement)
    text = re.sub(r"(\$\w*\$).*?\1", " $$ ", text, flags=re.DOTALL)
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    return " ".join(text.split()).upper()


def has_reason(text: str) -> bool:
    return any(len(match.group(1).strip()) >= MIN_REASON for match in MARKER.finditer(text))


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def top_level_parts(text: str) -> list[str]:
    """`text` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


ALTER_TABLE = re.compile(r"^ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?\w+\s+")
COLUMN_CLAUSE = re.compile(
    r"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?!(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE)\b)(\w+)\s+(.*)$"
)


def added_column_steps(shape: str, *, added_columns_break: bool) -> list[str]:
    """What is wrong with the columns an ALTER TABLE adds to an existing table."""
    if not ALTER_TABLE.match(shape):
        return []
    steps = []
    for clause in top_level_parts(ALTER_TABLE.sub("", shape, count=1)):
        column = COLUMN_CLAUSE.match(clause)
        if column is None:
            continue
        definition = column.group(2)
        if "NOT NULL" in definition and "DEFAULT" not in definition and "GENERATED" not in definition:
            steps.append(f"ADD COLUMN {column.group(1)} NOT NULL without DEFAULT")
        if added_columns_break:
            steps.append(f"ADD COLUMN {column.group(1)} to an existing table")
    return steps


def sql_steps(texts: list[str], created: set[str], *, added_columns_break: bool) -> list[tuple[str, str]]:
    """(operation, statement) for each contract step of the SQL texts."""
    steps = []
    for text in texts:
        for statement in statements(text):
            shape = bare(statement)
            target = TARGET.match(shape)
            if has_reason(statement) or (target is not None and target.group(1).lower() in created):
                continue
            steps += [(name, shape) for name, pattern in CONTRACT_SQL.items() if pattern.search(shape)]
            columns = added_column_steps(shape, added_columns_break=added_columns_break)
            steps += [(column, shape) for column in columns]
    return steps


def op_calls(nodes: list[ast.AST]) -> list[ast.Call]:
    return [
        call
        for node in nodes
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "op"
    ]


def op_name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else ""


def literal(call: ast.Call, position: int | None) -> str | None:
    if position is None or len(call.args) <= position:
        return None
    argument = call.args[position]
    return argument.value if isinstance(argument, ast.Constant) and isinstance(argument.value, str) else None


def keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value == value for k in call.keywords
    )


def op_step(call: ast.Call, *, added_columns_break: bool) -> str | None:
    """What an `op.` call takes away or tightens, if anything."""
    name = op_name(call)
    keywords = {k.arg for k in call.keywords}
    if name in CONTRACT_OPS:
        return f"op.{name}"
    if name == "alter_column" and (keywords & ALTER_COLUMN_CONTRACTS or keyword_is(call, "nullable", False)):
        return "op.alter_column"
    if name == "create_index" and keyword_is(call, "unique", True):
        return "op.create_index(unique=True)"
    if name == "add_column":
        columns = [c for c in call.args[1:] if isinstance(c, ast.Call)]
        not_null = any(
            keyword_is(c, "nullable", False) and "server_default" not in {k.arg for k in c.keywords}
            for c in columns
        )
        if not_null:
            return "op.add_column NOT NULL without server_default"
        if added_columns_break:
            return "op.add_column to an existing table"
    return None


def contract_steps(migration: Migration, *, added_columns_break: bool) -> list[Finding]:
    """The contract steps upgrade() takes without a marker giving the reason.

    `added_columns_break`: whether the previous release fails on a column added under its
    prepared statements (releases before `workengine.store.runner.row_type_changed` do)."""
    nodes = reachable(migration.tree)
    texts = sql_texts(nodes)
    calls = op_calls(nodes)
    created = {name.lower() for text in texts for name in CREATED.findall(text)}
    created |= {table.lower() for c in calls if op_name(c) == "create_table" and (table := literal(c, 0))}
    name = migration.path.name
    findings = [
        Finding(name, operation, short(statement))
        for operation, statement in sql_steps(texts, created, added_columns_break=added_columns_break)
    ]
    lines = migration.source.splitlines()
    for call in calls:
        table = literal(call, CONTRACT_OPS.get(op_name(call), 0))
        context = "\n".join(lines[max(call.lineno - 2, 0) : call.end_lineno])
        if (table is not None and table.lower() in created) or has_reason(context):
            continue
        operation = op_step(call, added_columns_break=added_columns_break)
        if operation is not None:
            findings.append(Finding(name, operation, short(ast.unparse(call))))
    return findings
