"""Alembic environment: runs on the connection `painting.db` hands over, inside its transaction.

There is no alembic.ini: `painting.db.upgrade()` builds the configuration in code and passes an open
connection (already holding the write lock) in `config.attributes["connection"]`. To write a new
revision by hand, copy the newest file in versions/ and bump `revision` / `down_revision`;
`tests/painting/test_migrations.py` checks that the migrations and `painting.db`'s tables agree.
"""

from __future__ import annotations

from alembic import context

from painting.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through painting.db.upgrade(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
