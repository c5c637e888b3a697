"""The log formats and the Redactor on real logging records: what a JSON line carries, the
text line's call fields, the trace id when OpenTelemetry traces, and each kind of secret masked."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from workengine import config
from workengine.calls import CALL, CALLER, Call
from workengine.config import ConfigError, ServeSettings
from workengine.domain.access import new_token, orchestrator_principal
from workengine.logs import Redactor, log_handler, parse_log_format, redact, url_passwords

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3x8Vn0Q\n"
    "-----END PRIVATE KEY-----\n"
)


class Logged:
    """A logger whose records go through a real handler of the given format into a string."""

    def __init__(self, log_format: str, secrets: tuple[str, ...] = ()) -> None:
        self.stream = io.StringIO()
        self.logger = logging.getLogger(f"workengine.test_logs.{log_format}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = log_handler(self.stream, log_format, Redactor(secrets))
        self.logger.addHandler(self.handler)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def json_log() -> Iterator[Logged]:
    logged = Logged("json", secrets=("admin-token-0123456789abcdef", "db-pass-word"))
    yield logged
    logged.close()


def test_a_json_line_has_time_level_logger_and_message_and_no_call_fields_outside_a_call(
    json_log: Logged,
) -> None:
    json_log.logger.info("%d tasks %s", 3, "moved")
    (record,) = json_log.records()
    assert RFC3339_UTC.match(record.pop("time"))
    assert record == {"level": "INFO", "logger": json_log.logger.name, "message": "3 tasks moved"}


def test_inside_a_call_a_json_line_names_the_method_peer_and_caller(json_log: Logged) -> None:
    method, peer = "/workengine.v1.WorkEngineService/GetTask", "ipv4:127.0.0.1:51234"
    call, caller = CALL.set(Call(method, peer)), CALLER.set(orchestrator_principal("ada"))
    try:
        json_log.logger.warning("refused")
    finally:
        CALL.reset(call)
        CALLER.reset(caller)
    (record,) = json_log.records()
    assert (record["method"], record["peer"], record["caller"]) == (method, peer, "orchestrator ada")
    assert "trace_id" not in record


def test_an_exception_is_a_field_with_its_type_message_and_traceback(json_log: Logged) -> None:
    try:
        raise ValueError("cannot parse postgresql://app:db-pass-word@db.internal/app")
    except ValueError:
        json_log.logger.exception("start-up failed")
    (record,) = json_log.records()
    exception = record["exception"]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "cannot parse postgresql://app:***@db.internal/app"
    assert exception["traceback"].startswith("Traceback (most recent call last):")
    assert exception["traceback"].endswith("ValueError: cannot parse postgresql://app:***@db.internal/app")
    assert "db-pass-word" not in json_log.stream.getvalue()
    assert len(json_log.lines()) == 1  # the traceback's newlines are escaped


def test_the_trace_id_is_the_current_spans_when_opentelemetry_is_loaded(
    json_log: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without opentelemetry.trace in sys.modules no trace id is looked for (it is not imported);
    with it, the current span's id, as 32 hex digits, when the span is valid."""
    monkeypatch.delitem(sys.modules, "opentelemetry.trace", raising=False)
    json_log.logger.info("untraced")
    valid = SimpleNamespace(trace_id=0x0AF7651916CD43DD8448EB211C80319C, is_valid=True)
    span = SimpleNamespace(get_span_context=lambda: valid)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", SimpleNamespace(get_current_span=lambda: span))
    json_log.logger.info("traced")
    valid.is_valid = False  # the API's INVALID_SPAN outside any span
    json_log.logger.info("outside a span")
    traced = [record.get("trace_id") for record in json_log.records()]
    assert traced == [None, "0af7651916cd43dd8448eb211c80319c", None]


def test_a_text_line_is_the_classic_one_with_the_call_fields_after_the_message() -> None:
    logged = Logged("text")
    logged.logger.info("outside")
    call = CALL.set(Call("/workengine.v1.WorkEngineService/ListTasks", "ipv6:[::1]:5000"))
    caller = CALLER.set(orchestrator_principal("ada"))
    try:
        logged.logger.warning("inside")
    finally:
        CALL.reset(call)
        CALLER.reset(caller)
        logged.close()
    outside, inside = logged.lines()
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO {logged.logger.name}: outside", outside
    )
    assert inside.endswith(
        " WARNING workengine.test_logs.text: inside [method=/workengine.v1.WorkEngineService/ListTasks "
        'peer=ipv6:[::1]:5000 caller="orchestrator ada"]'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:s3cret@db:5432/app", "postgresql://user:***@db:5432/app"),
        ("postgresql+psycopg://user:p@ss/w0rd@db/app failed", "postgresql+psycopg://user:***@db/app failed"),
        ("postgresql://:s3cret@db/app and postgresql://user@db/app", "postgresql://:***@db/app and postgresql://user@db/app"),
        ("host=db password=s3cret dbname=app", "host=db password=*** dbname=app"),
        ("host=db password='s3 cret' user=x", "host=db password=*** user=x"),
        ("postgresql://db/app?sslmode=require&password=s3cret", "postgresql://db/app?sslmode=require&password=***"),
        ("PGPASSWORD=s3cret psql", "PGPASSWORD=*** psql"),
        ("metadata: authorization: Bearer abcdefgh12345678", "metadata: authorization: Bearer ***"),
        ("send `authorization: Bearer <token>`", "send `authorization: Bearer <token>`"),
        ("http://127.0.0.1:8081/metrics", "http://127.0.0.1:8081/metrics"),
        ('password authentication failed for user "app"', 'password authentication failed for user "app"'),
    ],
)  # fmt: skip
def test_the_patterns_mask_passwords_and_tokens_and_leave_the_rest(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_orchestrator_tokens_and_private_keys_are_masked_wherever_they_appear() -> None:
    token = new_token()
    assert redact(f"token {token}, again: {token}!") == "token wet_***, again: wet_***!"
    assert (
        redact(f"key: {PRIVATE_KEY}end")
        == "key: -----BEGIN PRIVATE KEY----- *** -----END PRIVATE KEY-----\nend"
    )
    escaped = repr(PRIVATE_KEY.encode())  # as a bytes repr in a message: '\\n', not line breaks
    assert "MIGHAgEA" not in redact(escaped)
    cut_short = PRIVATE_KEY[:60]
    assert "MIGHAgEA" not in redact(cut_short)


def test_configured_secrets_are_masked_anywhere_in_messages_arguments_and_exceptions(
    json_log: Logged,
) -> None:
    json_log.logger.warning("token %s in %r", "admin-token-0123456789abcdef", {"pw": "db-pass-word"})
    try:
        raise RuntimeError("db-pass-word")
    except RuntimeError:
        json_log.logger.error("failed", exc_info=True, stack_info=True)
    json_log.logger.info("%s %s", "only one argument")  # does not fit: never printed raw
    first, second, third = json_log.records()
    assert first["message"] == "token *** in {'pw': '***'}"
    assert second["exception"]["message"] == "***"
    assert third["message"] == "%s %s (its arguments did not fit the message)"
    assert "admin-token-0123456789abcdef" not in json_log.stream.getvalue()
    assert "db-pass-word" not in json_log.stream.getvalue()


def test_short_secrets_are_masked_only_where_a_pattern_finds_them() -> None:
    redactor = Redactor(["pw", "", None])
    assert redactor.redact("pwd postgresql://u:pw@h/d") == "pwd postgresql://u:***@h/d"


def test_the_passwords_of_a_database_url_are_its_written_and_decoded_forms() -> None:
    assert sorted(url_passwords("postgresql://u:p%40ss@h/d?password=other")) == ["other", "p%40ss", "p@ss"]
    assert url_passwords("postgresql://u@h/d") == [] and url_passwords(None) == []
    assert url_passwords("postgresql://u:x@[::1/d") == []  # unparseable: left to the patterns


def test_the_log_format_setting_is_text_or_json() -> None:
    assert ServeSettings.from_sources({}, {}).log_format == "text"
    assert ServeSettings.from_sources({}, {"WORKENGINE_LOG_FORMAT": "JSON"}).log_format == "json"
    assert parse_log_format(" text ") == "text"
    with pytest.raises(ConfigError, match="WORKENGINE_LOG_FORMAT: 'yaml' is neither text nor json"):
        ServeSettings.from_sources({}, {"WORKENGINE_LOG_FORMAT": "yaml"})
    assert any(setting.flag == "--log-format" for setting in config.SETTINGS)
