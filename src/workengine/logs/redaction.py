"""Secrets out of log lines, as a defence in depth: nothing WorkEngine logs is meant to hold a
secret, but a library's error message or a traceback may quote a database URL, and a future
log call may quote what it should not.

Masked: the password of any URL (`postgresql://user:***@host/db`) and of libpq key/value
strings (`password=***`), bearer tokens, orchestrator tokens (`wet_***`), PEM private keys, and
any occurrence of a configured secret (the admin and metrics tokens, the database password).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

MASK = "***"
# A configured secret shorter than this is masked only where a pattern finds it (in a URL, after
# `password=`): masking every occurrence of a 3-letter password would mangle every line.
MIN_SECRET_LENGTH = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host: the password runs to the last '@' before a space, so an
    # unescaped '@' or '/' in it is masked too (a path may be masked with it: better than a leak).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)\S*@"), rf"\g<1>{MASK}@"),
    # libpq key/value connection strings, PGPASSWORD=..., ?password=... in a URL.
    (re.compile(r"(?i)(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&;,]+)"), rf"\g<1>{MASK}"),
    # 'authorization: Bearer <token>' wherever metadata ends up (not the '<token>' of a hint).
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1>{MASK}"),
    # Orchestrator tokens (domain/access.py: 'wet_' and 43 URL-safe characters).
    (re.compile(r"\bwet_[A-Za-z0-9_-]{16,}"), f"wet_{MASK}"),
    # A PEM private key, whole or cut short, with real or escaped ('\n') line breaks.
    (
        re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
        rf"-----BEGIN \g<1>----- {MASK} -----END \g<1>-----",
    ),
)


def url_passwords(url: str | None) -> list[str]:
    """The password(s) a database URL holds, as written and decoded, to mask wherever they occur."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:  # an unparseable URL: the patterns still mask what looks like a password
        return []
    return [form for password in found if password for form in {password, unquote(password)}]


@dataclass(frozen=True)
class ExceptionFields:
    """An exception as a log record carries it once redacted: its type, message and traceback."""

    type: str
    message: str
    traceback: str


def type_name(kind: type[BaseException]) -> str:
    """'ValueError', 'psycopg.OperationalError': builtins by name, others with their module."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class Redactor(logging.Filter):
    """Masks secrets in a record before any formatter sees it: the message (formatted with its
    arguments first, since an argument may be the secret), the exception and the stack. Records
    leave it formatted (`args` None), with a redacted `exc_text` (which every formatter prints
    instead of formatting `exc_info` again) and, for an exception, `exception` (ExceptionFields)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        # Longest first: a secret that contains another is masked whole.
        kept = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(kept, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: never print them raw
            message = f"{record.msg} (its arguments did not fit the message)"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            fields = self._exception(record.exc_info)
            record.exc_text = fields.traceback
            setattr(record, "exception", fields)  # noqa: B010 (not a LogRecord attribute)
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def _exception(self, exc_info: ExcInfo) -> ExceptionFields:
        kind, error, trace = exc_info
        text = "".join(traceback.format_exception(kind, error, trace)).rstrip("\n")
        return ExceptionFields(type_name(kind), self.redact(str(error)), self.redact(text))


def redact(text: str) -> str:
    """`text` with what the patterns find masked (no configured secrets: for messages printed
    before or without the configured logging, such as `serve`'s one-line start-up errors)."""
    return _PLAIN.redact(text)


_PLAIN = Redactor()
