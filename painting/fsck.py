"""The image store checked and tidied against the catalogs that refer to it.

`fsck(catalog, store)` checks that every image a record refers to exists and that its bytes still
hash to its id, and that every record still validates. `gc(store, catalogs)` removes the images no
record refers to any more (after a grace period) and temp files left by writers that died.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from painting.catalog import Catalog
from painting.errors import NotFound
from painting.images import ImageStore, is_image_id

DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong: with a painting's record, or with one image a painting refers to."""

    painting_id: str
    kind: str  # "missing", "corrupt", "invalid_id" or "record"
    message: str  # for a person
    role: str | None = None  # "content", "style", "preview", "result"
    image_id: str | None = None


@dataclass(frozen=True)
class FsckReport:
    """What `fsck` looked at and what it found."""

    paintings: int  # records checked
    images: int  # distinct images referred to (each hashed once)
    problems: tuple[Problem, ...]
    unreferenced: int  # stored images nothing refers to (`gc` removes them; not a problem)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(catalog: Catalog, store: ImageStore) -> FsckReport:
    """Check every record in the catalog's database (all scopes) against the store."""
    problems: list[Problem] = [
        Problem(painting_id=pid, kind="record", message=f"painting {pid}: {reason}")
        for pid, reason in catalog.invalid_records()
    ]
    verdicts: dict[str, str | None] = {}  # image id -> problem kind, or None when intact
    paintings: set[str] = set()
    for ref in catalog.image_references():
        paintings.add(ref.painting_id)
        if ref.image_id not in verdicts:
            verdicts[ref.image_id] = _check_image(store, ref.image_id)
        kind = verdicts[ref.image_id]
        if kind is None:
            continue
        what = {
            "missing": "is missing from the image store",
            "corrupt": "is corrupt: its bytes no longer hash to its id",
            "invalid_id": "has a malformed id",
        }[kind]
        problems.append(
            Problem(
                painting_id=ref.painting_id,
                kind=kind,
                role=ref.role,
                image_id=ref.image_id,
                message=f"painting {ref.painting_id}: {ref.role} image {ref.image_id!r} {what}",
            )
        )
    unreferenced = sum(1 for image_id in store if image_id not in verdicts)
    return FsckReport(
        paintings=len(paintings), images=len(verdicts), problems=tuple(problems), unreferenced=unreferenced
    )


def _check_image(store: ImageStore, image_id: str) -> str | None:
    if not is_image_id(image_id):
        return "invalid_id"
    try:
        return None if store.verify(image_id) else "corrupt"
    except NotFound:
        return "missing"


@dataclass(frozen=True)
class GcReport:
    """What `gc` removed (or, in a dry run, would remove) and what it left for later."""

    removed: tuple[str, ...]  # image ids
    too_recent: int  # unreferenced, but stored within the grace period
    temp_removed: int


def gc(
    store: ImageStore,
    catalogs: Catalog | Iterable[Catalog],
    *,
    grace_s: float = DEFAULT_GRACE_S,
    dry_run: bool = False,
) -> GcReport:
    """Remove images that no record in any of `catalogs` refers to, and stale temp files.

    Pass every catalog whose records may refer to this store (one per database sharing the store).
    An image stored (or stored again) within `grace_s` seconds is kept: a service stores the
    images of a painting before it creates the record, and must not lose them in between.
    """
    if isinstance(catalogs, Catalog):
        catalogs = [catalogs]
    # The referenced set is read before the store is listed: an image stored after this point is
    # recent, so the grace period protects it.
    referenced: set[str] = set()
    for catalog in catalogs:
        referenced |= catalog.referenced_images()
    cutoff = time.time() - grace_s
    removed: list[str] = []
    too_recent = 0
    for image_id in store:
        if image_id in referenced:
            continue
        try:
            if store.mtime(image_id) > cutoff:
                too_recent += 1
                continue
        except NotFound:
            continue
        if dry_run or store.delete(image_id):
            removed.append(image_id)
    temp_removed = 0 if dry_run else store.cleanup_temp(older_than_s=grace_s)
    return GcReport(removed=tuple(removed), too_recent=too_recent, temp_removed=temp_removed)


__all__ = ["DEFAULT_GRACE_S", "FsckReport", "GcReport", "Problem", "fsck", "gc"]
