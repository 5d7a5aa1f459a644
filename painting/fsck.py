"""The image store checked and tidied against the catalogs that refer to it.

`fsck(catalog, store)` checks that every image a record refers to exists and that its bytes still
hash to its id, and that every record still validates. `gc(store, catalogs)` removes the images no
record refers to any more (after a grace period) and temp files left by writers that died;
`start_collecting` runs `gc` every few minutes inside a service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from painting.catalog import Catalog
from painting.errors import NotFound, StorageUnavailable
from painting.images import ImageStore, is_image_id

DEFAULT_GRACE_S = 3600.0  # `deep-painting gc` by hand
# A temp file is a write in progress for milliseconds; one this old was left by a writer that died.
# It has its own floor: a short record grace (tests use 0) must never reach a write still in flight.
TEMP_GRACE_S = 600.0
# Inside a running service: an image stored less than a minute ago may be about to be referred to
# (stored before its record is written); anything older that nothing refers to is garbage.
SERVICE_GRACE_S = 60.0
log = logging.getLogger("painting.fsck")


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
    # The referenced set is read before the store is listed: an image stored after this point is
    # recent, so the grace period protects it.
    referenced = _referenced(catalogs)
    removed, too_recent = _remove_unreferenced(store, store, referenced, grace_s, dry_run)
    temp_removed = 0 if dry_run else store.cleanup_temp(older_than_s=max(grace_s, TEMP_GRACE_S))
    return GcReport(removed=tuple(removed), too_recent=too_recent, temp_removed=temp_removed)


def collect(
    store: ImageStore, catalogs: Catalog | Iterable[Catalog], image_ids: Iterable[str], *, grace_s: float
) -> tuple[str, ...]:
    """`gc` for a few images only, at once: those of a painting just deleted. Returns the ids removed.

    An image some record still refers to stays, and so does one stored within `grace_s` (another
    painting may be about to refer to the same bytes); the periodic collection takes those later.
    """
    return tuple(_remove_unreferenced(store, set(image_ids), _referenced(catalogs), grace_s, False)[0])


def _referenced(catalogs: Catalog | Iterable[Catalog]) -> set[str]:
    referenced: set[str] = set()
    for catalog in [catalogs] if isinstance(catalogs, Catalog) else catalogs:
        referenced |= catalog.referenced_images()
    return referenced


def _remove_unreferenced(
    store: ImageStore, candidates: Iterable[str], referenced: set[str], grace_s: float, dry_run: bool
) -> tuple[list[str], int]:
    """(removed ids, how many were too recent) among `candidates` that nothing refers to."""
    cutoff = time.time() - grace_s
    removed: list[str] = []
    too_recent = 0
    for image_id in candidates:
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
    return removed, too_recent


def write_problem(store: ImageStore, catalog: Catalog) -> str | None:
    """Why a service cannot store its work right now (its database or its image store refuses a
    small write), or None: what its readiness check asks."""
    try:
        catalog.check_writable()
        store.check_writable()
    except StorageUnavailable as exc:
        return str(exc)
    return None


def start_collecting(
    store: ImageStore, catalog: Catalog, *, interval_s: float, grace_s: float
) -> asyncio.Task[None] | None:
    """For a running service: a task that runs `gc` every `interval_s` seconds (None when 0), so
    replaced previews and the images of deleted paintings do not pile up. Cancel it to stop."""
    if interval_s <= 0:
        return None
    return asyncio.create_task(_collect_forever(store, catalog, interval_s, grace_s), name="collect-images")


async def _collect_forever(store: ImageStore, catalog: Catalog, interval_s: float, grace_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await asyncio.to_thread(gc, store, catalog, grace_s=grace_s)
        except Exception as exc:  # storage trouble: the next round tries again
            log.warning("collecting unreferenced images failed: %s", exc)
            continue
        if report.removed or report.temp_removed:
            log.info("removed %d unreferenced image(s), %d temp file(s)", len(report.removed), report.temp_removed)


__all__ = [
    "DEFAULT_GRACE_S",
    "SERVICE_GRACE_S",
    "FsckReport",
    "GcReport",
    "Problem",
    "collect",
    "fsck",
    "gc",
    "start_collecting",
    "write_problem",
]
