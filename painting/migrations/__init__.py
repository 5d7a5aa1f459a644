"""Alembic migrations of the painting database, run by `painting.db.upgrade` at start-up."""
