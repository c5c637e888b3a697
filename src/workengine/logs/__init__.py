"""How `workengine serve` logs: records as text or JSON lines on standard error, each with the
RPC it was emitted for and the current trace, with secrets masked (docs/operations.md#logs).

serve's own lines (`workengine listening on ...`, `shutting down`) are `announce`d: on standard
output, as before, and there as plain text in the text format, a JSON record (logger
`workengine.serve`) in the json format, so that a collector parsing the json format reads every
line the server writes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from types import TracebackType
from typing import TextIO

from workengine.logs.formats import CallFields, JsonFormatter, TextFormatter
from workengine.logs.redaction import Redactor, redact, url_passwords

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "LOG_FORMATS",
    "Redactor",
    "announce",
    "configure",
    "log_handler",
    "parse_log_format",
    "redact",
    "url_passwords",
]

LOG_FORMATS = ("text", "json")
# Text, on a terminal or not: the output does not change with where it is redirected, and a
# deployment that ships logs to a collector says so once (WORKENGINE_LOG_FORMAT=json).
DEFAULT_LOG_FORMAT = "text"

ANNOUNCEMENTS = logging.getLogger("workengine.serve")


def parse_log_format(text: str) -> str:
    """'text' or 'json' (any case); ValueError for anything else."""
    if text.strip().lower() not in LOG_FORMATS:
        raise ValueError(f"{text!r} is neither text nor json")
    return text.strip().lower()


def log_handler(
    stream: TextIO, log_format: str, redactor: Redactor, *, bare: bool = False
) -> logging.Handler:
    """A handler writing `log_format` lines to `stream`, with the call's fields, secrets masked;
    `bare`: the text format is the message alone (serve's announcements)."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(message)s") if bare else TextFormatter())
    # The Redactor first: should anything later fail, logging's error report prints the record's
    # message and arguments, and those are masked by then.
    handler.addFilter(redactor)
    handler.addFilter(CallFields())
    return handler


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """An exception nothing handled ends the process as a log record: in the chosen format, and
    through the Redactor (a traceback may quote a database URL)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("workengine").critical("stopped by an unexpected error", exc_info=(kind, error, trace))


def configure(log_format: str, secrets: Iterable[str | None] = ()) -> None:
    """Logging for `serve`: INFO and above on standard error in `log_format`, with `secrets`
    (and whatever looks like a password or a token) masked; Python warnings and uncaught
    exceptions as records; announcements on standard output."""
    log_format = parse_log_format(log_format)
    redactor = Redactor(secrets)
    logging.basicConfig(level=logging.INFO, handlers=[log_handler(sys.stderr, log_format, redactor)])
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    for old in list(ANNOUNCEMENTS.handlers):
        ANNOUNCEMENTS.removeHandler(old)
    ANNOUNCEMENTS.addHandler(log_handler(sys.stdout, log_format, redactor, bare=True))
    ANNOUNCEMENTS.setLevel(logging.INFO)
    ANNOUNCEMENTS.propagate = False  # not on standard error as well


def announce(message: str) -> None:
    """One of serve's own lines, on standard output (printed as is until `configure` ran, as by
    `workengine migrate`)."""
    if ANNOUNCEMENTS.handlers:
        ANNOUNCEMENTS.info(message)
    else:
        print(message, flush=True)
