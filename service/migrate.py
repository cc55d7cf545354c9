"""`python -m service migrate`: apply the numbered SQL files in service/sql/ once each.

Each file `NNN_name.sql` runs in its own transaction together with the row recording it
in `schema_migrations`, so a file is either fully applied and recorded or not at all.
A session-level advisory lock serialises concurrent runs (two replicas starting at once):
the second waits, then finds nothing left to do. Safe to run repeatedly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from service.deps import database_address, reaching
from service.errors import ConfigError
from service.logs import setup_logging
from service.settings import load_settings

log = logging.getLogger(__name__)

#: pg_advisory_lock key; arbitrary but fixed ("gwmigrat" in ASCII)
ADVISORY_LOCK_KEY = 0x67776D6967726174
_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped in service/sql/, in version order; duplicate numbers are an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files("service").joinpath("sql").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ConfigError(f"two migrations share version {version}: {found[version].name}, {entry.name}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is missing on `conn`; return the names applied."""
    todo = load_migrations() if migrations is None else migrations
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in todo:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration", extra={"migration": migration.name})
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return applied


async def migrate(dsn: str) -> list[str]:
    async with reaching("postgres", database_address(dsn)):
        conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="Postgres DSN (default: DATABASE_URL)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    dsn: str | None = args.database_url
    if dsn is None:
        settings.require("database_url", purpose="migrate")
        assert settings.database_url is not None
        dsn = settings.database_url.get_secret_value()
    applied = asyncio.run(migrate(dsn))
    log.info("schema up to date", extra={"applied": applied})
    return 0
