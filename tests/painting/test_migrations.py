"""The Alembic migrations: empty to head (and back) on SQLite and PostgreSQL, in step with the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from painting import db
from painting.catalog import Catalog
from painting.errors import CatalogError

TABLES = {
    "paintings",
    "painting_styles",
    "painting_progress",
    "remote_actions",
    "health",
    "trainings",
    "training_progress",
}


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_empty_to_head_and_back(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        assert db.current_revision(engine) is None
        assert tables(engine) == set()
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        assert tables(engine) == TABLES
        db.upgrade(engine)  # already at head: nothing to do
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert tables(engine) == set()
        db.upgrade(engine)
        assert tables(engine) == TABLES
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.Base.metadata)
        assert diff == [], "painting/db.py and painting/migrations disagree; write a migration"
    finally:
        engine.dispose()


def test_catalog_migrates_at_start_and_can_refuse_to(database_url: str) -> None:
    with pytest.raises(CatalogError, match="start the service once to migrate it"):
        Catalog(database_url, migrate=False)
    with Catalog(database_url) as catalog:
        assert catalog.count() == 0
    with Catalog(database_url, migrate=False) as catalog:  # now at head: opens without migrating
        assert catalog.count() == 0


def test_a_database_from_a_newer_version_is_refused_clearly(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        with db.writer(engine).begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
        with pytest.raises(CatalogError, match="newer version of deep-painting"):
            db.upgrade(engine)
    finally:
        engine.dispose()


def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(CatalogError, match="Unsupported database"):
        db.make_engine("mysql://u@localhost/x")
