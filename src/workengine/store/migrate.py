"""Schema migrations (Alembic), run by `workengine migrate` and on `serve` start-up."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, exc, text

from workengine.domain.errors import Unavailable
from workengine.store.database import sqlalchemy_url

# Serialises concurrent migrations from replicas starting at once.
_MIGRATION_LOCK_KEY = 0x776F726B656E67  # "workeng"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("workengine.store") / "migrations"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrades the schema; `Unavailable` when the database cannot be reached."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except exc.OperationalError as error:
        raise Unavailable(f"cannot reach the database: {error.orig}") from error
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration this code knows: the schema it expects."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head
