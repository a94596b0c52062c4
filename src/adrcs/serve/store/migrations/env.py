"""Alembic environment of the results store.

Run through ``adrcs.serve.store.store.upgrade`` (no alembic.ini needed). The caller may pass an open
connection in ``config.attributes["connection"]``; otherwise ``sqlalchemy.url`` is used.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from adrcs.serve.store.schema import Base

config = context.config
target_metadata = Base.metadata
_PG_LOCK_KEY = 7_202_607  # advisory lock: concurrent upgrades on PostgreSQL run one after the other


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or a fresh one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from adrcs.serve.store.store import normalize_url

    engine = create_engine(normalize_url(config.get_main_option("sqlalchemy.url") or ""), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
