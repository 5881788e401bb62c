"""Storage: SQLAlchemy tables, the async unit of work, queries and Alembic migrations."""
