"""Reaching Kafka and Postgres at start-up: a failure becomes one line naming what and where.

`async with reaching("postgres", database_address(dsn)): ...` turns the drivers' many
connection errors (refused, DNS, TLS, timeout, authentication, missing database) into
DependencyUnavailable, which `python -m service` prints as one line and exit code 3.
The address never carries the password.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
from aiokafka.errors import KafkaError

from service.errors import DependencyUnavailable

#: what "cannot reach it" looks like from asyncpg, aiokafka and the socket layer
UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError)


def database_address(dsn: str) -> str:
    """host:port/database of a DSN, without user or password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(unparsable DATABASE_URL)"
    return f"{host}:{port}{parts.path}"


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


@contextlib.asynccontextmanager
async def reaching(dependency: str, address: str) -> AsyncIterator[None]:
    try:
        yield
    except UNREACHABLE as exc:
        raise DependencyUnavailable(f"{dependency} at {address} is unreachable ({describe(exc)})") from exc
