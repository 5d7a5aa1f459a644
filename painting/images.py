"""Image blobs: a content-addressed store of checked PNG/JPEG/WEBP files under one folder.

    store = ImageStore(Path("data/images"))
    ref = store.put(upload_bytes)          # ImageRef(id=sha256 hex, width, height, format, size)
    with store.open(ref.id) as f: ...      # or store.read(ref.id), store.path(ref.id)

An image's id is the sha256 of its bytes, so the same bytes stored twice are one file and an id
says by itself whether a file is intact. Files live at `<root>/<id[:2]>/<id>`; every id is checked
against `[0-9a-f]{64}` before it comes near a path, so nothing a user sends can name a file
outside the root.

Writes are atomic: the bytes go to a temp file in the final folder (`.tmp-*.part`), are flushed
and fsynced, renamed over the final name with `os.replace`, and the folder is fsynced. A process
killed at any point leaves either nothing or a temp file under a name no reader takes for an image;
`cleanup_temp` removes old ones.

`open_image` is the one rule for an acceptable image, used by the store on the way in and by the
engine (`pycasso.imaging`) alike: byte cap, format, pixel cap (read from the header, before any
pixel is decoded, so a decompression bomb costs nothing), then a full decode so a truncated file is
refused too. `put_all` checks every image of a request before it stores any of them.

An image may carry an EXIF orientation tag (phones write one): values 5 to 8 mean it is shown turned
a quarter, so its width and height swap. `ImageRef.width`/`height` are as stored; `ImageRef.upright`
and `upright_size` are as shown, which is what the engine paints (`ImageOps.exif_transpose`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pillow_heif
from PIL import Image, UnidentifiedImageError

from painting.errors import ImageRejected, ImageTooLarge, InvalidId, InvalidImage, NotFound, StorageUnavailable
from painting.uploads import clean

# HEIC, what iPhones write, through pillow-heif (libheif). Its opener turns the image upright itself.
pillow_heif.register_heif_opener()

# The formats an image may come back as. MPO is what Pillow calls the JPEGs many cameras and phones
# write (a JPEG with extra frames after the first, e.g. a depth map): a JPEG to every browser, so it
# is served as one. Pillow opens it with its JPEG plugin, so `_PLUGINS` is all it is allowed to use.
# An uploaded MPO or HEIC is stored as a plain JPEG (`painting.uploads`), so only the engine's own
# inputs (the CLI's files) are ever read as HEIF.
FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "WEBP", "HEIF")
_PLUGINS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "HEIF")
MEDIA_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}
ACCEPTED = "PNG, JPEG, WEBP and HEIC are accepted"
# The one set of caps. Both services' settings and the engine take their defaults from here.
DEFAULT_MAX_BYTES = 25 * 1024 * 1024  # a large phone photo is 5-15 MB
DEFAULT_MAX_PIXELS = 40_000_000  # 8000 x 5000; decoding one costs about 160 MB of RGBA

_ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 as stored; 2-4 mirrored or turned half; 5-8 turned a quarter
_ID_RE = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".tmp-"
_TEMP_SUFFIX = ".part"
# Everything Pillow raises for damaged or hostile input, short of running out of memory.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)
# Formats people send that we do not take, told apart by their first bytes so the refusal can name
# them (Pillow is never asked to open them: some of its plugins run external programs).
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF8", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"%PDF", "PDF"),
    (0, b"\x00\x00\x01\x00", "ICO"),
)


def check_image_id(image_id: object) -> str:
    """Return `image_id` if it is a well-formed image id (64 lowercase hex digits); raise InvalidId."""
    if not isinstance(image_id, str) or not _ID_RE.fullmatch(image_id):
        raise InvalidId("That is not a valid image id.")
    return image_id


def is_image_id(value: object) -> bool:
    """Whether `value` is a well-formed image id."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class ImageRef:
    """A stored (or checked) image: its id, pixel size (as stored), format, size in bytes, orientation."""

    id: str
    width: int
    height: int
    format: str  # one of FORMATS
    size: int  # bytes
    orientation: int = 1  # its EXIF orientation tag, 1 (as stored) when it has none

    @property
    def media_type(self) -> str:
        """The HTTP content type, e.g. `image/png`."""
        return MEDIA_TYPES[self.format]

    @property
    def upright(self) -> tuple[int, int]:
        """(width, height) as the image is shown, its orientation applied: what the engine paints."""
        return _upright(self.width, self.height, self.orientation)


def _upright(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _orientation(im: Image.Image) -> int:
    """The image's EXIF orientation (1 when it has none, or one that means nothing); InvalidImage when
    its EXIF block cannot be read, which the engine could not read either."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS as exc:
        raise InvalidImage("The image's EXIF data is damaged and cannot be read.") from exc
    return value if type(value) is int and 1 <= value <= 8 else 1


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an image as shown, its orientation applied, read from the header alone.

    None when the header cannot be read: the full check (`open_image`, `ImageStore.put_all`) then
    says why. For a rule about the shape of a photo, checked before anything is decoded or stored.
    """
    try:
        with Image.open(io.BytesIO(bytes(data)), formats=_PLUGINS) as im:
            width, height = im.size
            return _upright(width, height, _orientation(im))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, *_DECODE_ERRORS):
        return None  # UnidentifiedImageError is an OSError, and _orientation's InvalidImage a ValueError


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _not_accepted(data: bytes) -> str:
    for offset, magic, name in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return f"This is a {name} file; {ACCEPTED}."
    return f"This is not an image we can read: {ACCEPTED}."


def open_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The one rule for an acceptable image: check `data` and return it decoded, or raise.

    Checks in order of cost: bytes, format (PNG, JPEG, MPO, WEBP only), the pixel count the header
    declares (before any pixel is decoded, so a decompression bomb costs nothing), then a full
    decode, so a truncated file is refused too. Raises ImageTooLarge (byte or pixel cap) or
    InvalidImage (empty, another format, damaged). The image comes back as the file has it: the
    caller applies the EXIF orientation if it wants pixels the right way up.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"image data must be bytes, not {type(data).__name__}")
    size = len(data)
    if size == 0:
        raise InvalidImage("The file is empty (0 bytes).")
    if size > max_bytes:
        raise ImageTooLarge(f"The file is {_megabytes(size)}; the limit is {_megabytes(max_bytes)}.")
    data = bytes(data)
    try:
        # Reads the header only. Pillow's own bomb check (its global MAX_IMAGE_PIXELS) may fire
        # here first: map it, but do not rely on it, since any code in the process may change it.
        im = Image.open(io.BytesIO(data), formats=_PLUGINS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning only arrives as an exception where warnings are errors (as in the tests).
        raise ImageTooLarge(
            f"The image declares too many pixels; the limit is {max_pixels / 1e6:.1f} megapixels."
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(_not_accepted(data)) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage("The image is damaged or truncated and cannot be decoded.") from exc
    width, height = im.size
    if im.format not in FORMATS:  # the plugins allowed cannot make another, but say so if one does
        im.close()
        raise InvalidImage(f"This is a {im.format} file; {ACCEPTED}.")
    if width < 1 or height < 1:
        im.close()
        raise InvalidImage("The image has no pixels.")
    if width * height > max_pixels:  # from the header: no pixel has been decoded yet
        im.close()
        raise ImageTooLarge(
            f"The image is {width} × {height} pixels ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:.1f} megapixels."
        )
    try:
        im.load()  # decode every pixel: a truncated or corrupt stream fails here
    except _DECODE_ERRORS as exc:
        im.close()
        raise InvalidImage("The image is damaged or truncated and cannot be decoded.") from exc
    return im


def inspect_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageRef:
    """Check that `data` is an acceptable image (`open_image`) and describe it; store nothing."""
    with open_image(data, max_bytes=max_bytes, max_pixels=max_pixels) as im:
        width, height = im.size
        fmt = str(im.format)
        orientation = _orientation(im)
    return ImageRef(
        id=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=fmt,
        size=len(data),
        orientation=orientation,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageStore:
    """Content-addressed image files under `root`, checked on the way in and written atomically.

    Safe to share between threads and processes: every write is a rename of a complete file, and
    two writers of the same bytes write the same file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if max_bytes < 1 or max_pixels < 1:
            raise ValueError("max_bytes and max_pixels must be positive")
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    # -- writing -------------------------------------------------------------------------------

    def inspect(self, data: bytes) -> ImageRef:
        """Check `data` with this store's caps and describe it, without storing it."""
        return inspect_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    def put(self, data: bytes) -> ImageRef:
        """Check and store an image; return its ref. Storing the same bytes again changes nothing.

        Raises ImageTooLarge or InvalidImage, in which case nothing was written, or
        StorageUnavailable when the disk refuses the write.
        """
        ref = self.inspect(data)
        self._store(ref, bytes(data))
        return ref

    def put_all(self, images: Sequence[tuple[str, bytes]]) -> list[ImageRef]:
        """Check and clean every (name, bytes) upload, then store them all; their refs, in order.

        Cleaning (`painting.uploads.clean`) turns a photo upright and drops its metadata (location,
        camera), so nothing stored or served carries them. A refused image raises ImageTooLarge or
        InvalidImage with its name in front ("style 2: The file is empty.") before anything is
        written, so a refused request stores nothing. Each image is decoded once.
        """
        cleaned = []
        for name, data in images:
            try:
                with open_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels) as im:
                    cleaned.append(clean(im, bytes(data)))
            except ImageRejected as exc:
                raise type(exc)(f"{name}: {exc}") from None
        refs = []
        for image in cleaned:
            ref = ImageRef(
                id=image.id, width=image.width, height=image.height, format=image.format, size=len(image.data)
            )
            self._store(ref, image.data)
            refs.append(ref)
        return refs

    def put_inputs(self, content: bytes | None, styles: Sequence[bytes]) -> tuple[ImageRef | None, list[ImageRef]]:
        """`put_all` for a painting's uploads, named as a refusal names them: the photo's ref (None
        when there is none: a latent model's painting) and the style images' refs, in order."""
        refs = self.put_all(([("content", content)] if content is not None else []) + [("style", s) for s in styles])
        return (refs[0], refs[1:]) if content is not None else (None, refs)

    def _store(self, ref: ImageRef, data: bytes) -> None:
        final = self._file(ref.id)
        try:
            if final.stat().st_size == ref.size:
                # Already there. Refresh its time so `gc`'s grace period protects it from a
                # collection that started before the record now being written refers to it.
                with contextlib.suppress(OSError):
                    os.utime(final)
                return
        except FileNotFoundError:
            pass
        try:
            self._write_atomically(final, data)
        except OSError as exc:  # full, read-only, immutable, I/O error: the machine's fault
            raise StorageUnavailable(f"The image store cannot be written: {exc.strerror or exc}") from exc

    def check_writable(self) -> None:
        """Write and remove a small temp file in the store; StorageUnavailable when that fails."""
        try:
            fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.root)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise StorageUnavailable(f"The image store cannot be written: {exc.strerror or exc}") from exc

    def _write_atomically(self, final: Path, data: bytes) -> None:
        folder = final.parent
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            _fsync_dir(self.root)  # make the new folder's own name durable
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(folder)

    # -- reading -------------------------------------------------------------------------------

    def _file(self, image_id: str) -> Path:
        image_id = check_image_id(image_id)
        return self.root / image_id[:2] / image_id

    def path(self, image_id: str) -> Path:
        """The file of a stored image (to serve it); raises NotFound or InvalidId."""
        file = self._file(image_id)
        if not file.is_file():
            raise NotFound("No image with that id.")
        return file

    def exists(self, image_id: str) -> bool:
        """Whether an image with this id is stored. A malformed id is simply not stored: False."""
        if not is_image_id(image_id):
            return False
        return self._file(image_id).is_file()

    def open(self, image_id: str) -> BinaryIO:
        """Open a stored image for reading in binary mode; raises NotFound or InvalidId."""
        try:
            return open(self._file(image_id), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise NotFound("No image with that id.") from None

    def read(self, image_id: str) -> bytes:
        """The bytes of a stored image; raises NotFound or InvalidId."""
        with self.open(image_id) as f:
            return f.read()

    def ref(self, image_id: str) -> ImageRef:
        """Describe a stored image (reads its header only); raises NotFound or InvalidId."""
        file = self.path(image_id)
        try:
            with Image.open(file, formats=_PLUGINS) as im:
                width, height = im.size
                fmt = str(im.format)
                orientation = _orientation(im)
        except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
            raise InvalidImage("The stored image is damaged and cannot be read.") from exc
        return ImageRef(
            id=image_id, width=width, height=height, format=fmt, size=file.stat().st_size, orientation=orientation
        )

    def verify(self, image_id: str) -> bool:
        """Whether the stored bytes still hash to their id; raises NotFound or InvalidId."""
        digest = hashlib.sha256()
        with self.open(image_id) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == image_id

    def __iter__(self) -> Iterator[str]:
        """The ids of all stored images (temp files and strays are skipped), in id order."""
        return self.ids()

    def ids(self) -> Iterator[str]:
        """The ids of all stored images (temp files and strays are skipped), in id order."""
        try:
            shards = sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return
        for shard in shards:
            if len(shard) != 2:
                continue
            try:
                names = sorted(e.name for e in os.scandir(self.root / shard) if e.is_file(follow_symlinks=False))
            except FileNotFoundError:
                continue
            for name in names:
                if is_image_id(name) and name[:2] == shard:
                    yield name

    def mtime(self, image_id: str) -> float:
        """When the image was last stored (or stored again); raises NotFound or InvalidId."""
        try:
            return self._file(image_id).stat().st_mtime
        except FileNotFoundError:
            raise NotFound("No image with that id.") from None

    # -- removing ------------------------------------------------------------------------------

    def delete(self, image_id: str) -> bool:
        """Remove a stored image; return whether there was one. Raises InvalidId."""
        try:
            os.unlink(self._file(image_id))
        except FileNotFoundError:
            return False
        return True

    def cleanup_temp(self, older_than_s: float = 3600.0) -> int:
        """Remove temp files left by writers that died; return how many.

        Only files older than `older_than_s` go, so a write in progress in another process is safe.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for shard in self.root.iterdir():
            if not shard.is_dir() or shard.is_symlink():
                continue
            for entry in shard.iterdir():
                if not is_temp_name(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= cutoff:
                        entry.unlink()
                        removed += 1
        return removed


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of the store's temp files (never a final image)."""
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


__all__ = [
    "ACCEPTED",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "ImageRef",
    "ImageStore",
    "check_image_id",
    "inspect_image",
    "open_image",
    "is_image_id",
    "is_temp_name",
    "upright_size",
]
