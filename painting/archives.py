"""Image collections uploaded for a training run: unpacked safely in memory, then checked image by image.

    files = unpack(upload, max_files=2000, max_bytes=500_000_000)   # a ZIP or TAR (.gz, .bz2, .xz)
    files = from_files(parts, max_files=2000, max_bytes=500_000_000) # or many files, one part each
    images = check_images(files, min_images=MIN_IMAGES["cyclegan"], what="photos", max_pixels=...)

Nothing here ever writes to disk: members are read into memory, so no name in an archive can reach
the filesystem. Still, an archive with a member a careless tool would have written outside its folder
(an absolute path, a `..`), a link (symbolic or hard) or a device is refused as a whole: it was made
by mistake or on purpose, and either way its author should hear so. Directories are skipped, and so
are hidden files and the junk that archivers add (`__MACOSX/`, `.DS_Store`, `._*` resource forks,
`Thumbs.db`, `desktop.ini`).

Sizes are counted as the bytes come out, never taken from headers (a zip bomb declares a small
size, or a true one that nobody checks): members are read in chunks and the count stops the read as
soon as the files are more than `max_files` or their uncompressed bytes more than `max_bytes`. A
compressed tar is decompressed by a capped stream too, so its headers (long names, pax records)
cannot make it expand without end either. An archive inside the archive is not unpacked: it is one
more file, and not an image.

Errors (`painting.errors` keeps the rest of the package's):

    PaintingError, ValueError
    └── ArchiveRejected          the collection cannot be used: not an archive, damaged, unsafe
        │                        members, unreadable images, too few images (HTTP 422)
        └── ArchiveTooLarge      more files or more bytes than the caps (HTTP 413)

Each image is checked with the one rule of `painting.images` (`open_image`: format, byte and pixel
caps, decompression bombs, a full decode); storing them (`ImageStore.put_all`) cleans them as it does
every upload.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import IO

from painting.errors import ArchiveRejected, ArchiveTooLarge, ImageRejected
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, open_image

_CHUNK = 1 << 16  # bytes read at a time from a member, so a count can stop a bomb early
_SHOWN_NAME = 60  # characters of a member's name a message shows at most
_SHOWN_UNREADABLE = 5  # names of unreadable files a message lists at most
# A tar member costs a 512-byte header and pads its data to 512 bytes; long names and pax records
# add more. The uncompressed tar stream may be this much larger than the files it holds, per file
# allowed, plus a fixed allowance for directories and junk: beyond that it is not a collection of
# images but a bomb.
_TAR_OVERHEAD_PER_FILE = 3 * 512
_TAR_OVERHEAD = 4 << 20
_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini"})
# Compressed tar formats by their first bytes, their suffix, and how to decompress them as a stream.
_COMPRESSED: tuple[tuple[bytes, str, Callable[[io.BytesIO], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", "gz", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", "bz2", lambda f: bz2.BZ2File(f, mode="rb")),
    (b"\xfd7zXZ\x00", "xz", lambda f: lzma.LZMAFile(f, mode="rb")),  # noqa: SIM115 - the caller closes it
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
_TAR_MAGIC_OFFSET = 257  # "ustar" (POSIX, pax) or "ustar  " (GNU) in the first header
# What a damaged archive raises while it is read (zlib, bz2 and lzma errors, truncated streams).
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError)


def _shown(name: str) -> str:
    """A member's name fit for a message: quoted, control characters escaped, long ones cut."""
    return repr(name if len(name) <= _SHOWN_NAME else name[: _SHOWN_NAME - 1] + "…")


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def archive_format(data: bytes) -> str | None:
    """What `data` is, told by its content (never its name): "zip", "tar", "tar.gz", "tar.bz2",
    "tar.xz", or None when it is none of them. A compressed file is only looked into far enough to
    tell whether a tar is inside."""
    head = bytes(data[: _TAR_MAGIC_OFFSET + 8])
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if _is_tar_header(head):
        return "tar"
    for magic, label, opener in _COMPRESSED:
        if head.startswith(magic):
            try:
                with opener(io.BytesIO(data)) as stream:
                    inner = stream.read(_TAR_MAGIC_OFFSET + 8)
            except _READ_ERRORS:
                return None
            return f"tar.{label}" if _is_tar_header(inner) else None
    return None


def _is_tar_header(head: bytes) -> bool:
    return head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"


class _Budget:
    """Counts the files kept and their bytes as they are read; raises ArchiveTooLarge past a cap."""

    def __init__(self, *, max_files: int, max_bytes: int) -> None:
        if max_files < 1 or max_bytes < 1:
            raise ValueError("max_files and max_bytes must be positive")
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.files = 0
        self.bytes = 0

    def add_file(self) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveTooLarge(f"The upload holds more than {self.max_files} files; that is the limit.")

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise ArchiveTooLarge(
                f"The files of the upload come to more than {_megabytes(self.max_bytes)} uncompressed; "
                "that is the limit."
            )

    def read(self, stream: IO[bytes], declared: int) -> bytes:
        """All of `stream`, read in chunks and counted; the `declared` size is only an early warning."""
        if self.bytes + declared > self.max_bytes:
            self.add_bytes(declared)  # raises: it says it is too large, and we believe that much
        parts = []
        while chunk := stream.read(_CHUNK):
            self.add_bytes(len(chunk))
            parts.append(chunk)
        return b"".join(parts)


class _CappedStream(io.RawIOBase):
    """A read-only stream that refuses (ArchiveTooLarge) to yield more than `cap` bytes of `inner`."""

    def __init__(self, inner: io.BufferedIOBase, cap: int, *, max_bytes: int) -> None:
        self._inner = inner
        self._left = cap
        self._cap = cap
        self._max_bytes = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._inner.read(min(len(view), self._left + 1))
        if len(data) > self._left:
            raise ArchiveTooLarge(
                f"The archive unpacks to more than {_megabytes(self._cap)}, far more than the "
                f"{_megabytes(self._max_bytes)} its files may come to; it is refused."
            )
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def _check_name(name: str) -> str:
    """The member's name, or ArchiveRejected when a careless unpacker would write it outside its folder."""
    if "\x00" in name:
        raise ArchiveRejected(f"The archive has a member whose name holds a NUL byte ({_shown(name)}).")
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":" and normal[0].isalpha()):
        raise ArchiveRejected(
            f"The archive has a member with an absolute path ({_shown(name)}); only relative paths are allowed."
        )
    if ".." in normal.split("/"):
        raise ArchiveRejected(
            f"The archive has a member whose path leads out of the archive with '..' ({_shown(name)})."
        )
    return name


def _is_junk(name: str) -> bool:
    """Hidden files and what archivers add on their own: skipped, never counted."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return True
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):  # also .DS_Store and ._ resource forks
        return True
    return parts[-1].lower() in _JUNK_NAMES


def _link_refused(name: str, what: str) -> ArchiveRejected:
    return ArchiveRejected(f"The archive has a {what} ({_shown(name)}); only plain files and folders are allowed.")


def _unpack_zip(data: bytes, budget: _Budget) -> list[tuple[str, bytes]]:
    files = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = _check_name(info.filename)
            mode = info.external_attr >> 16  # the Unix mode, where a Unix archiver wrote one
            if stat.S_ISLNK(mode):
                raise _link_refused(name, "symbolic link")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise _link_refused(name, "device or other special file")
            if info.is_dir() or _is_junk(name):
                continue
            if info.flag_bits & 0x1:
                raise ArchiveRejected(f"The archive's member {_shown(name)} is encrypted; send it unencrypted.")
            budget.add_file()
            with archive.open(info) as member:
                files.append((name, budget.read(member, info.file_size)))
    return files


def _unpack_tar(stream: IO[bytes], budget: _Budget) -> list[tuple[str, bytes]]:
    files = []
    # "r|": a stream, read once from front to back, so the capped stream below it sees every byte.
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            name = _check_name(member.name)
            if member.issym():
                raise _link_refused(name, "symbolic link")
            if member.islnk():
                raise _link_refused(name, "hard link")
            if member.ischr() or member.isblk() or member.isfifo():
                raise _link_refused(name, "device or other special file")
            if member.isdir() or _is_junk(name):
                continue
            if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                raise _link_refused(name, "member that is not a plain file (sparse, volume, ...)")
            budget.add_file()
            extracted = archive.extractfile(member)
            if extracted is None:  # only links and special files have no data, and those are refused above
                raise _link_refused(name, "member without data")
            with extracted:
                files.append((name, budget.read(extracted, member.size)))
    return files


def unpack(data: bytes, *, max_files: int, max_bytes: int) -> list[tuple[str, bytes]]:
    """The (name, bytes) of each file in a ZIP or TAR archive (plain, gzip, bzip2 or xz), in order.

    The format is told by the content, not the name. Directories, hidden files and archivers' junk
    are skipped. Raises ArchiveTooLarge as soon as the files are more than `max_files` or their
    uncompressed bytes more than `max_bytes` (counted as they are read), and ArchiveRejected for
    anything else: not an archive, damaged, encrypted, or holding a link, a device, an absolute path
    or a `..`. Nothing is written to disk.
    """
    budget = _Budget(max_files=max_files, max_bytes=max_bytes)
    data = bytes(data)
    kind = archive_format(data)
    if kind is None:
        raise ArchiveRejected("This is not a zip or tar archive (tar may be compressed with gzip, bzip2 or xz).")
    try:
        if kind == "zip":
            return _unpack_zip(data, budget)
        raw: io.BufferedIOBase = io.BytesIO(data)
        if kind != "tar":
            opener = next(opener for magic, _, opener in _COMPRESSED if data.startswith(magic))
            raw = opener(io.BytesIO(data))
        cap = max_bytes + max_files * _TAR_OVERHEAD_PER_FILE + _TAR_OVERHEAD
        with raw:
            return _unpack_tar(io.BufferedReader(_CappedStream(raw, cap, max_bytes=max_bytes), _CHUNK), budget)
    except ArchiveRejected:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveRejected(f"The {kind} archive is damaged and cannot be read ({exc}).") from None


def from_files(parts: Iterable[tuple[str, bytes]], *, max_files: int, max_bytes: int) -> list[tuple[str, bytes]]:
    """Many uploaded files (not an archive), each taken as one member with the same rules as
    `unpack`: hidden files and junk are skipped (a folder uploaded whole brings them), a name with
    an absolute path or `..` is refused, and the files and their bytes are counted against the caps
    (ArchiveTooLarge). An archive among them is not unpacked."""
    budget = _Budget(max_files=max_files, max_bytes=max_bytes)
    files = []
    for name, data in parts:
        _check_name(name)
        if _is_junk(name):
            continue
        budget.add_file()
        budget.add_bytes(len(data))
        files.append((name, bytes(data)))
    return files


def check_images(
    files: list[tuple[str, bytes]],
    *,
    min_images: int,
    what: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_image_bytes: int = DEFAULT_MAX_BYTES,
) -> list[bytes]:
    """The bytes of every file, in order, once each has passed the one image rule (`open_image`).

    The whole collection is refused (ArchiveRejected, its message starting with `what`, e.g.
    "photos") when ANY file is not an image we can take (another format, damaged, over the byte or
    pixel cap): the message counts them and names up to five with the reason, so the person can fix
    the upload rather than train on less than they think. It is refused too when fewer than
    `min_images` files are there at all. Nothing is dropped silently.
    """
    readable: list[bytes] = []
    refused: list[tuple[str, str]] = []
    for name, data in files:
        try:
            with open_image(data, max_bytes=max_image_bytes, max_pixels=max_pixels):
                pass
        except ImageRejected as exc:
            refused.append((name, str(exc).rstrip(".")))
        else:
            readable.append(data)
    too_few = len(readable) < min_images
    if not refused and not too_few:
        return readable
    needed = f"at least {min_images} readable images are needed, {len(readable)} found"
    if not refused:
        raise ArchiveRejected(f"{what}: {needed}.")
    listed = ", ".join(f"{_shown(name)} ({reason})" for name, reason in refused[:_SHOWN_UNREADABLE])
    more = len(refused) - _SHOWN_UNREADABLE
    if more > 0:
        listed += f" and {more} more"
    verb = "is not an image" if len(refused) == 1 else "are not images"
    if too_few:
        advice = needed
    else:
        advice = f"remove {'it' if len(refused) == 1 else 'them'} and send the other {len(readable)} again"
    raise ArchiveRejected(f"{what}: {len(refused)} of {len(files)} files {verb} we can read: {listed}; {advice}.")


__all__ = [
    "ArchiveRejected",
    "ArchiveTooLarge",
    "archive_format",
    "check_images",
    "from_files",
    "unpack",
]
