"""Alembic environment: the engine comes from `monitor.storage.engine.alembic_config`."""

from __future__ import annotations

from alembic import context

from monitor.storage.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: take the URL from alembic.ini
    from monitor.storage.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///primewatch.db")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
