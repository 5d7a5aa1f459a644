"""The painting database: its tables, the engine set-up for SQLite and PostgreSQL, and migrations.

Private to `painting`: services use `painting.catalog.Catalog`, never these tables or SQL.

SQLite is set up for several processes writing one file: WAL (readers never block the writer),
a busy timeout, and `BEGIN IMMEDIATE` for every write transaction. The last one matters most:
with a deferred `BEGIN`, two transactions that both read and then write deadlock on the lock
upgrade and SQLite answers "database is locked" at once, without waiting. Taking the write lock at
`BEGIN` makes writers queue on the busy timeout instead. Python's sqlite3 module (before 3.12)
issues its own BEGINs, so it is told not to (`isolation_level = None`) and SQLAlchemy's `begin`
event issues ours: SQLAlchemy's documented recipe for SQLite transactions.

The schema is created and evolved by the Alembic migrations in `painting/migrations/`, run by
`upgrade()` inside one write transaction (under an advisory lock on PostgreSQL), so several
processes starting at once migrate exactly once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from painting.errors import CatalogError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_S = 60.0  # how long a SQLite writer waits for the write lock before giving up
_WRITE_OPTION = "painting_write"
# Any constant will do; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_KEY = 0x7061696E74  # "paint"


# -- column types --------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LossFloat(TypeDecorator[float]):
    """A float that may be NaN or infinite (a diverging run): stored as NULL, read back as NaN.

    SQLite cannot store NaN at all; storing NULL on both backends keeps them alike.
    """

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def process_result_value(self, value: float | None, dialect: Dialect) -> float:
        return math.nan if value is None else float(value)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


# -- tables --------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them (SQLite batch mode needs names).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class PaintingRow(Base):
    """One painting (Gallery) or job (Studio)."""

    __tablename__ = "paintings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Which service's record this is, so Gallery and Studio can share one database.
    scope: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    content_image: Mapped[str | None] = mapped_column(String(64))  # None: a latent model's painting
    preview_image: Mapped[str | None] = mapped_column(String(64))
    preview_iteration: Mapped[int | None] = mapped_column(Integer)  # the iteration preview_image shows
    result_image: Mapped[str | None] = mapped_column(String(64))
    iteration: Mapped[int] = mapped_column(Integer)
    iterations: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(200))
    remote_url: Mapped[str | None] = mapped_column(String(2000))
    remote_cursor: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # Who may cancel, remix or delete it: a digest of the secret the creating browser holds (never
    # the secret itself). None for records made before owners existed, and for Studio's jobs.
    owner: Mapped[str | None] = mapped_column(String(64))
    # The loss weights changed while it painted, oldest first: [{iteration, weights, at}] (None: never).
    weight_changes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    # Which Gallery process drives it, and until when unless renewed (Catalog.claim): replicas share
    # the database, and a painting's dispatch is one process's at a time.
    holder: Mapped[str | None] = mapped_column(String(200))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("scope", "idempotency_key"),
        Index(None, "scope", "created_at", "id"),  # newest first, per scope
        Index(None, "scope", "status"),  # unfinished work
        Index(None, "scope", "owner", "status"),  # one browser's paintings, its unfinished ones
        Index(None, "scope", "remote_id"),  # the painting of a remote job (a change to forward to it)
    )


class StyleRow(Base):
    """One style image of a painting, with its blend weight; `position` keeps their order."""

    __tablename__ = "painting_styles"

    painting_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("paintings.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64))
    weight: Mapped[float] = mapped_column(Float)


class ProgressRow(Base):
    """One point of a painting's loss curve. One row per iteration: a resumed run overwrites."""

    __tablename__ = "painting_progress"

    painting_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("paintings.id", ondelete="CASCADE"), primary_key=True
    )
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluations: Mapped[int] = mapped_column(Integer)
    total_loss: Mapped[float] = mapped_column(LossFloat(), nullable=True)
    content_loss: Mapped[float] = mapped_column(LossFloat(), nullable=True)
    style_loss: Mapped[float] = mapped_column(LossFloat(), nullable=True)
    tv_loss: Mapped[float] = mapped_column(LossFloat(), nullable=True)
    elapsed_s: Mapped[float] = mapped_column(Float)


class RemoteActionRow(Base):
    """What the other side must still do to one of its jobs, not yet confirmed (Gallery: a Studio
    job to `cancel`, or to `forget` with its images when the painting was deleted).

    Kept until confirmed, so a painting cancelled or deleted while Studio is away is still stopped
    (and forgotten) there when it returns, across Gallery restarts too.
    """

    __tablename__ = "remote_actions"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    remote_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # "cancel", "forget" or "weights"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    remote_url: Mapped[str | None] = mapped_column(String(2000))  # which Studio (None: the only one)
    target: Mapped[str | None] = mapped_column(String(16))  # "training": a training run's; None: a painting's job


class TrainingRow(Base):
    """One training run (painting.records.TrainingRecord)."""

    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    model_name: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    step: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer)
    losses: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # the latest step's; None: no step yet
    seconds_per_step: Mapped[float | None] = mapped_column(Float)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    sample_image: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(64))
    remote_id: Mapped[str | None] = mapped_column(String(200))
    remote_url: Mapped[str | None] = mapped_column(String(2000))
    remote_cursor: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("scope", "idempotency_key"),
        Index(None, "scope", "created_at", "id"),
        Index(None, "scope", "status"),
    )


class TrainingProgressRow(Base):
    """One step of a training's loss curves. One row per step: a resumed run overwrites."""

    __tablename__ = "training_progress"

    training_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    losses: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    seconds_per_step: Mapped[float] = mapped_column(Float)
    elapsed_s: Mapped[float] = mapped_column(Float)


class HealthRow(Base):
    """One row per scope, rewritten by each readiness check: a write that proves the database takes writes."""

    __tablename__ = "health"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- engines -------------------------------------------------------------------------------------


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return URL.create("sqlite", database=str(Path(path).resolve())).render_as_string()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the database; a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str | URL) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up as the module docstring says.

    A bare `postgresql://` URL gets the psycopg (3) driver, the one installed.
    """
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if backend == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        return create_engine(u, pool_pre_ping=True)
    raise CatalogError(f"Unsupported database {backend!r}: use a sqlite:// or postgresql:// URL.")


def writer(engine: Engine) -> Engine:
    """The same engine (same pool), whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{_WRITE_OPTION: True})


# -- migrations ----------------------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent start-ups; released at commit.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config = _alembic_config(conn)
        try:
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
        except CommandError as exc:
            raise CatalogError(
                f"Cannot migrate the painting database ({exc}). It may have been written by a newer "
                "version of deep-painting."
            ) from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to `revision` (default: the newest), in one transaction."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to `revision` ("base": empty), in one transaction."""
    _run(engine, "downgrade", revision)


__all__ = [
    "Base",
    "HealthRow",
    "PaintingRow",
    "ProgressRow",
    "RemoteActionRow",
    "StyleRow",
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "sqlite_url",
    "upgrade",
    "writer",
]
