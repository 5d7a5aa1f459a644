"""painting: the storage library both services use, and the shared painting parameters.

Import from the module that owns a name; each module's `__all__` is its public face, and
`tests/test_architecture.py` checks that nothing outside the package imports anything else:

    painting.params     Params, parse_params and the layer names and size limits (pydantic only)
    painting.progress   ProgressPoint and its one JSON shape, json_safe (standard library only)
    painting.estimate   a painting's seconds and peak memory before it is painted (pure; pydantic only)
    painting.records    Status, PaintingRecord, StyleImage, painting ids (no database)
    painting.images     ImageStore, ImageRef, ImageLimits: the one rule for an acceptable image (Pillow)
    painting.catalog    Catalog: the records in SQLite or PostgreSQL (SQLAlchemy, Alembic)
    painting.fsck       fsck and gc over a store and its catalogs
    painting.errors     the errors of all of the above

The package itself imports nothing, so the engine, which needs only the light modules, never pays
for SQLAlchemy.
"""
