"""serve's settings table: flags win over WORKENGINE_* variables, which win over the defaults,
and each default is its owner's value."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from workengine import config
from workengine.api.guard import DEFAULT_MAX_STREAMS_PER_CLIENT
from workengine.api.server import DEFAULT_MAX_CONNECTION_AGE_GRACE, DEFAULT_PORT, MAX_MESSAGE_BYTES
from workengine.config import ConfigError, ServeSettings
from workengine.domain.attempts import DEFAULT_LEASE
from workengine.engine.execution import MAX_CLAIM_WAIT
from workengine.engine.feed import FeedSettings
from workengine.engine.maintenance import MaintenanceSettings
from workengine.serve import security


def parse(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_every_setting_is_a_field_of_the_settings_and_every_field_has_a_setting() -> None:
    fields = {field.name for field in dataclasses.fields(ServeSettings)}
    table = {setting.field for setting in config.SETTINGS}
    assert fields <= table
    assert table - fields == {"admin_token_file", "metrics_token_file"}  # read into the tokens


def test_without_flags_or_variables_each_default_is_its_owners() -> None:
    settings = ServeSettings.from_sources({}, {})
    assert settings.port == DEFAULT_PORT
    assert settings.poll_interval == FeedSettings.poll_interval
    assert settings.event_retention == FeedSettings.retention
    assert settings.listen is FeedSettings.listen
    assert settings.lease_duration == DEFAULT_LEASE
    assert settings.maintenance_interval == MaintenanceSettings.interval
    assert settings.max_message_bytes == MAX_MESSAGE_BYTES
    assert settings.max_streams_per_client == DEFAULT_MAX_STREAMS_PER_CLIENT
    assert settings.migrate is True and settings.insecure is False and settings.admin_token is None
    assert settings.data_dir == config.default_data_dir()


def test_a_flag_wins_over_its_variable_which_wins_over_the_default() -> None:
    env = {"WORKENGINE_PORT": "6000", "WORKENGINE_EVENT_RETENTION": "12h", "WORKENGINE_MIGRATE": "0"}
    from_env = ServeSettings.from_sources(parse(), env)
    assert (from_env.port, from_env.event_retention, from_env.migrate) == (6000, timedelta(hours=12), False)
    from_flags = ServeSettings.from_sources(parse("--port", "7000", "--event-retention", "1d"), env)
    assert (from_flags.port, from_flags.event_retention) == (7000, timedelta(days=1))


def test_switch_flags_set_their_value_and_variables_read_on_and_off() -> None:
    flags = parse("--no-listen", "--no-migrate", "--insecure")
    settings = ServeSettings.from_sources(flags, {})
    assert (settings.listen, settings.migrate, settings.insecure) == (False, False, True)
    on = ServeSettings.from_sources({}, {"WORKENGINE_INSECURE": "1", "WORKENGINE_LISTEN": "0"})
    assert (on.insecure, on.listen) == (True, False)


def test_a_bad_variable_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="WORKENGINE_LEASE_DURATION: 'soon' is not a duration"):
        ServeSettings.from_sources({}, {"WORKENGINE_LEASE_DURATION": "soon"})
    for guess in ("maybe", "true", "yes"):  # refused, not guessed: insecure must be asked for as 1
        with pytest.raises(ConfigError, match=f"WORKENGINE_INSECURE: '{guess}' is neither"):
            ServeSettings.from_sources({}, {"WORKENGINE_INSECURE": guess})


def test_migrate_reads_only_where_the_database_is() -> None:
    env = {"WORKENGINE_DATABASE_URL": "postgresql://db/x", "WORKENGINE_LEASE_DURATION": "soon"}
    settings = ServeSettings.from_sources({}, env, only=("database_url", "data_dir"))
    assert settings.database_url == "postgresql://db/x"
    assert settings.lease_duration == DEFAULT_LEASE


def test_an_empty_flag_counts_as_not_given() -> None:
    env = {"WORKENGINE_ADMIN_TOKEN": "b" * 20, "WORKENGINE_HOST": "::1"}
    settings = ServeSettings.from_sources({"admin_token": "", "host": ""}, env)
    assert (settings.admin_token, settings.host) == ("b" * 20, "::1")
    assert ServeSettings.from_sources({}, {"WORKENGINE_SHUTDOWN_GRACE": "0"}).grace_seconds == 0


def test_a_bad_flag_is_an_argparse_error_naming_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--max-message-size", "big")
    assert "'big' is not a size" in capsys.readouterr().err


def test_the_admin_token_flags_win_over_the_variables_as_a_pair(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("a" * 20)
    env = {"WORKENGINE_ADMIN_TOKEN": "b" * 20}
    assert ServeSettings.from_sources({}, env).admin_token == "b" * 20
    assert ServeSettings.from_sources(parse("--admin-token-file", str(secret)), env).admin_token == "a" * 20


def test_help_shows_each_flag_with_its_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    text = parser.format_help().replace("\n", " ")
    for setting in config.SETTINGS:
        if setting.flag is not None:
            assert setting.flag in text and setting.env in text.replace(" ", ""), setting.field
    assert "default 7d" in text and "default 8MiB" in text and "default 5m" in text


def test_max_connection_age_is_off_by_default_and_reaches_the_server_as_grpc_options() -> None:
    settings = ServeSettings.from_sources({}, {})
    assert settings.max_connection_age == timedelta(0)
    assert security(settings).connection_options() == []  # gRPC's default: connections live on
    env = {"WORKENGINE_MAX_CONNECTION_AGE": "30m", "WORKENGINE_MAX_CONNECTION_AGE_GRACE": "2m"}
    from_env = security(ServeSettings.from_sources(parse(), env))
    assert dict(from_env.connection_options()) == {
        "grpc.max_connection_age_ms": 30 * 60 * 1000,
        "grpc.max_connection_age_grace_ms": 2 * 60 * 1000,
    }
    # The flag wins, also when it turns the age off.
    assert (
        security(ServeSettings.from_sources(parse("--max-connection-age", "0"), env)).connection_options()
        == []
    )
    default_grace = dict(
        security(ServeSettings.from_sources(parse("--max-connection-age", "5m"), {})).connection_options()
    )
    assert default_grace["grpc.max_connection_age_grace_ms"] == DEFAULT_MAX_CONNECTION_AGE_GRACE * 1000
    # A claim waits at most MAX_CLAIM_WAIT: the default grace lets the longest wait answer.
    assert timedelta(seconds=DEFAULT_MAX_CONNECTION_AGE_GRACE) > MAX_CLAIM_WAIT
    with pytest.raises(ConfigError, match="WORKENGINE_MAX_CONNECTION_AGE: 'soon' is not a duration"):
        ServeSettings.from_sources({}, {"WORKENGINE_MAX_CONNECTION_AGE": "soon"})
