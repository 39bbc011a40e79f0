"""Alembic environment and versions for primewatch's schema (SQLite and PostgreSQL)."""
