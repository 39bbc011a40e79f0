"""Storage: SQLAlchemy models, engines (SQLite in WAL mode or PostgreSQL), migrations and
the query functions everything else goes through. No other package writes SQL."""
