"""A training's image collections in Gallery: checked on the way in, kept on disk until Studio has them.

    images = check_collections("cyclegan", {"photos": [(name, bytes)], "paintings": [...]}, caps)
    sets = TrainingSets(settings.data_dir / "trainings")
    sets.store(training_id, images)          # trainings/<id>/<collection>/0001.png, ... (atomically)
    archive = sets.archive(training_id, "photos")   # one uncompressed zip, to send to Studio; close it
    sets.remove(training_id)                 # once Studio has accepted it, or the training was deleted

`check_collections` is what Gallery can say about an upload before anything is stored, so a person
gets the refusal (422, counting the images that cannot be read or are too few) without a round trip
to Studio: each collection is ONE archive part (zip or tar, unpacked by `painting.archives`, which
refuses links, `..`, absolute paths, and counts files and bytes as they come out) or MANY image
parts, and every image passes the one image rule. It reads and decodes every image: run it in a
thread.

The checked images are not put in the image store: a training set is large, never shown, and is
Studio's business once Studio has it. They are written as they came (no re-encoding) into a folder of
their own, made under a temporary name and renamed into place, so the follower (gallery.trainings)
finds either the whole set or none; it deletes the folder once Studio has accepted the training.
A folder no unsent training owns (left by a crash between writing it and storing the record, or
while it was being removed) is swept when Gallery starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from httpapi.errors import BadRequest
from painting.archives import archive_format, check_images, from_files, unpack
from painting.errors import ArchiveRejected, ImageRejected, NotFound, StorageUnavailable
from painting.images import open_image
from painting.records import check_painting_id
from painting.training import MIN_IMAGES, collections_for

log = logging.getLogger("gallery.training_sets")

_SPOOL_BYTES = 8 * 1024 * 1024  # an archive being sent stays in memory up to this, then goes to a temp file
_TEMP_PREFIX = ".incoming-"


@dataclass(frozen=True)
class CollectionCaps:
    """How much one collection may hold: files, uncompressed bytes, and each image's bytes and pixels."""

    max_files: int
    max_bytes: int
    max_image_bytes: int
    max_image_pixels: int


def check_collections(
    kind: str, uploads: Mapping[str, Sequence[tuple[str, bytes]]], caps: CollectionCaps
) -> dict[str, list[bytes]]:
    """The images of each collection a training of `kind` takes (`collections_for`), in order, each
    checked. `uploads` gives each collection's file parts as (file name, bytes): one archive, or
    the images themselves.

    Raises BadRequest (422) for a collection missing or one the kind does not take, ArchiveRejected
    (422) for an archive that cannot be used or images that cannot be read or are too few (counted,
    named), ArchiveTooLarge (413) over the caps; each message starts with the collection's name.
    """
    wanted = collections_for(kind)
    stray = sorted(set(uploads) - set(wanted))
    if stray:
        raise BadRequest(f"{stray[0]}: a {kind} training is trained on {' and '.join(wanted)}, not {stray[0]}")
    checked = {}
    for name in wanted:
        parts = list(uploads.get(name) or ())
        if not parts:
            raise BadRequest(
                f"{name}: missing: give an archive of them (zip or tar) or the images themselves "
                f"(at least {MIN_IMAGES[kind]})"
            )
        checked[name] = check_images(
            _files(name, parts, caps),
            min_images=MIN_IMAGES[kind],
            what=name,
            max_pixels=caps.max_image_pixels,
            max_image_bytes=caps.max_image_bytes,
        )
    return checked


def _files(name: str, parts: list[tuple[str, bytes]], caps: CollectionCaps) -> list[tuple[str, bytes]]:
    """The (name, bytes) of a collection's files: an archive's members, or the parts themselves."""
    try:
        if len(parts) == 1 and archive_format(parts[0][1]) is not None:
            return unpack(parts[0][1], max_files=caps.max_files, max_bytes=caps.max_bytes)
        if len(parts) == 1 and not _is_image(parts[0][1], caps):
            raise ArchiveRejected(
                "this file is neither a zip or tar archive (tar may be compressed with gzip, bzip2 or xz) "
                "nor an image we can read."
            )
        return from_files(parts, max_files=caps.max_files, max_bytes=caps.max_bytes)
    except ArchiveRejected as exc:  # ArchiveTooLarge too: the same class again, with the collection named
        raise type(exc)(f"{name}: {str(exc)[:1].lower()}{str(exc)[1:]}") from None


def _is_image(data: bytes, caps: CollectionCaps) -> bool:
    try:
        with open_image(data, max_bytes=caps.max_image_bytes, max_pixels=caps.max_image_pixels):
            return True
    except ImageRejected:
        return False


def _extension(data: bytes) -> str:
    """The file extension of a checked image, told by its first bytes."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "img"


class TrainingSets:
    """The training sets waiting to be sent to Studio, one folder each under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, training_id: str) -> Path:
        return self.root / check_painting_id(training_id)  # an id is 32 hex digits: never a path of its own

    def store(self, training_id: str, collections: Mapping[str, Sequence[bytes]]) -> None:
        """Write a training's checked images, all or nothing: into a temporary folder, each file
        flushed to disk, then renamed into place. Raises StorageUnavailable when the disk refuses."""
        final = self.folder(training_id)
        temp: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{training_id}-", dir=self.root))
            for name, images in collections.items():
                folder = temp / name
                folder.mkdir()
                for number, data in enumerate(images, start=1):
                    with open(folder / f"{number:04d}.{_extension(data)}", "xb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
            os.replace(temp, final)
            temp = None
            _fsync_dir(self.root)
        except OSError as exc:
            raise StorageUnavailable(f"Gallery could not keep the training's images: {exc.strerror or exc}") from exc
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)

    def has(self, training_id: str) -> bool:
        return self.folder(training_id).is_dir()

    def counts(self, training_id: str) -> dict[str, int]:
        """How many images each collection of a stored set holds. Raises NotFound."""
        folder = self.folder(training_id)
        if not folder.is_dir():
            raise NotFound("Gallery no longer holds that training's images.")
        return {c.name: sum(1 for f in c.iterdir() if f.is_file()) for c in sorted(folder.iterdir()) if c.is_dir()}

    def archive(self, training_id: str, collection: str) -> IO[bytes]:
        """One collection of a stored set as an uncompressed zip (images are compressed already),
        in memory up to a few MB and in a temporary file beyond, open for reading from its start;
        the caller closes it. Reads the whole collection: call it in a thread. Raises NotFound when
        the set (or that collection) is not there, StorageUnavailable when the disk fails."""
        folder = self.folder(training_id) / collection
        if not folder.is_dir():
            raise NotFound("Gallery no longer holds that training's images.")
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, dir=str(self.root))  # noqa: SIM115 - the caller closes it
        try:
            with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
                for path in sorted(folder.iterdir()):
                    if path.is_file():
                        archive.write(path, arcname=path.name)
            spool.seek(0)
        except OSError as exc:
            spool.close()
            if not folder.is_dir():  # removed while it was read
                raise NotFound("Gallery no longer holds that training's images.") from None
            raise StorageUnavailable(f"Gallery could not read the training's images: {exc.strerror or exc}") from exc
        except BaseException:
            spool.close()
            raise
        return spool

    def remove(self, training_id: str) -> None:
        """Delete a training's set, if it is there (renamed out of the way first, so a set is never half there)."""
        folder = self.folder(training_id)
        if not folder.is_dir():
            return
        doomed = self.root / f"{_TEMP_PREFIX}removed-{training_id}"
        try:
            os.replace(folder, doomed)
        except OSError as exc:
            log.warning("training %s: could not remove its images: %s", training_id, exc)
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def sweep(self, keep: set[str]) -> list[str]:
        """Remove every set but those of `keep` (training ids), and every temporary folder; the names
        removed."""
        if not self.root.is_dir():
            return []
        removed = []
        for path in sorted(self.root.iterdir()):
            if path.name in keep or not path.is_dir():
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        return removed


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["CollectionCaps", "TrainingSets", "check_collections"]
