"""Schema migrations (Alembic), run by `workengine migrate` and on `serve` start-up."""

from __future__ import annotations

import functools
import logging
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, exc, text

from workengine.domain.errors import Unavailable
from workengine.store.database import sqlalchemy_url

# Serialises concurrent migrations from replicas starting at once.
_MIGRATION_LOCK_KEY = 0x776F726B656E67  # "workeng"

log = logging.getLogger("workengine")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("workengine.store") / "migrations"))
    return config


def migrate(url: str, revision: str = "head") -> str | None:
    """Upgrades the schema; `Unavailable` when the database cannot be reached.

    A database at a revision this code does not know was migrated by a newer release: during
    a rolling upgrade (or after a rollback) this release runs on it unchanged, as the rule of
    docs/development.md ("Migrations and rolling upgrades") promises, so there is nothing to do.
    Returns that revision then (and logs it), None otherwise."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            newer = newer_revision(config, connection)
            if newer is not None:
                log.info("the database schema is at %s, newer than this release's: not migrating", newer)
                return newer
            command.upgrade(config, revision)
    except exc.OperationalError as error:
        raise Unavailable(f"cannot reach the database: {error.orig}") from error
    finally:
        engine.dispose()
    return None


def newer_revision(config: Config, connection: Connection) -> str | None:
    """The database's revision when this code's migrations do not include it."""
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = sorted(set(current) - known)
    return ", ".join(unknown) if unknown else None


@functools.cache
def head_revision() -> str:
    """The newest migration this code knows: the schema it expects."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every migration this code knows; a revision outside it is a later release's."""
    return frozenset(
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )
