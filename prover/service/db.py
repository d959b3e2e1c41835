"""Database engine, sessions and schema migrations (Alembic, applied on start)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x70726F76  # advisory lock id held while migrating PostgreSQL


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One pooled engine per URL and process (see ``forget_inherited_connections``)."""
    if url not in _engines:
        _engines[url] = _create_engine(url)
    return _engines[url]


def forget_inherited_connections() -> None:
    """In a process forked from one that used the database (Celery's pool children): drop
    the parent's pooled connections without closing them, so that the two processes never
    share a connection."""
    for engine in _engines.values():
        engine.dispose(close=False)


def _create_engine(url: str) -> Engine:
    """SQLite gets WAL and a busy timeout so that several worker processes share the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


@lru_cache
def _sessions(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    session = _sessions(url)()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def migrate(url: str) -> None:
    """Bring the schema to the newest revision; safe to call from many processes at once."""
    from alembic import command
    from alembic.config import Config

    engine = engine_for(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine.dialect.name == "sqlite":
        lock_path = Path(make_url(url).database or ".").with_suffix(".migrate.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
