"""Rows only: the SQLAlchemy Core schema and the queries over it, for SQLite and PostgreSQL."""
