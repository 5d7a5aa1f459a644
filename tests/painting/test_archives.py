"""Uploaded image collections: archives unpacked in memory, hostile members refused, bombs stopped, images counted."""

from __future__ import annotations

import builtins
import io
import os
import stat
import struct
import tarfile
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from painting.archives import ArchiveRejected, ArchiveTooLarge, archive_format, check_images, from_files, unpack

MB = 1_000_000
CAPS = {"max_files": 100, "max_bytes": 10 * MB}

# -- building archives ---------------------------------------------------------------------------


def make_zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def tar_member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(members: Sequence[tuple[tarfile.TarInfo | str, bytes]], compression: str = "") -> bytes:
    """A tar of (name or TarInfo, data) members, compressed with `compression` ("", gz, bz2, xz)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}", format=tarfile.GNU_FORMAT) as archive:  # type: ignore[call-overload]
        for info, data in members:
            if isinstance(info, str):
                info, data = tar_member(info, data)
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


@pytest.fixture
def pngs(make_image: Callable[..., bytes]) -> list[tuple[str, bytes]]:
    return [(f"photos/{i}.png", make_image(16, 12, seed=i)) for i in range(3)]


# -- unpacking -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_a_tar_unpacks_whatever_its_compression(pngs, compression):
    data = make_tar(pngs, compression)
    assert archive_format(data) == ("tar." + compression if compression else "tar")
    assert unpack(data, **CAPS) == pngs


def test_a_zip_unpacks_and_the_format_is_told_by_the_content(pngs):
    data = make_zip(pngs)
    assert archive_format(data) == "zip"
    assert unpack(data, **CAPS) == pngs
    assert unpack(make_zip([]), **CAPS) == []


@pytest.mark.parametrize(
    "data",
    [b"", b"just some text", b"\x89PNG\r\n\x1a\n" + bytes(600), b"\x1f\x8b not really gzip", b"Rar!\x1a\x07\x00"],
    ids=["empty", "text", "png", "bad-gzip", "rar"],
)
def test_anything_else_is_not_an_archive(data):
    assert archive_format(data) is None
    with pytest.raises(ArchiveRejected, match=r"^This is not a zip or tar archive"):
        unpack(data, **CAPS)


def test_an_image_or_a_gzipped_image_is_not_an_archive(make_image):
    import gzip

    for data in (make_image(), gzip.compress(make_image())):
        with pytest.raises(ArchiveRejected, match="not a zip or tar archive"):
            unpack(data, **CAPS)


def test_a_damaged_archive_is_refused_as_damaged(pngs):
    zipped = make_zip(pngs)
    with pytest.raises(ArchiveRejected, match=r"^The zip archive is damaged"):
        unpack(zipped[: len(zipped) // 2] + zipped[-22:], **CAPS)  # members cut, the end record kept
    tarred = make_tar(pngs, "gz")
    with pytest.raises(ArchiveRejected, match=r"^The tar.gz archive is damaged"):
        unpack(tarred[: len(tarred) // 2], **CAPS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x.png", r"leads out of the archive with '\.\.' \('\.\./x\.png'\)"),
        ("photos/../../x.png", r"leads out of the archive"),
        ("/etc/x.png", r"absolute path \('/etc/x\.png'\)"),
        ("C:/Windows/x.png", r"absolute path"),
        ("..\\x.png", r"leads out of the archive"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_a_member_outside_the_archive_refuses_the_whole_archive(make_image, name, message, fmt):
    members = [("fine.png", make_image()), (name, make_image())]
    data = make_zip(members) if fmt == "zip" else make_tar(members, "gz" if fmt == "tar.gz" else "")
    with pytest.raises(ArchiveRejected, match=message):
        unpack(data, **CAPS)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tar_member("link.png", kind=tarfile.SYMTYPE, link="/etc/passwd"), r"symbolic link \('link\.png'\)"),
        (tar_member("hard.png", kind=tarfile.LNKTYPE, link="a.png"), r"hard link \('hard\.png'\)"),
        (tar_member("dev.png", kind=tarfile.CHRTYPE), r"device or other special file \('dev\.png'\)"),
        (tar_member("disk.png", kind=tarfile.BLKTYPE), r"device or other special file"),
        (tar_member("pipe.png", kind=tarfile.FIFOTYPE), r"device or other special file"),
        (tar_member("sparse.png", kind=tarfile.GNUTYPE_SPARSE), r"not a plain file"),
    ],
    ids=["symlink", "hardlink", "chardev", "blockdev", "fifo", "sparse"],
)
def test_a_link_or_a_device_in_a_tar_refuses_it(make_image, member, message):
    data = make_tar([tar_member("a.png", make_image()), member])
    with pytest.raises(ArchiveRejected, match=message):
        unpack(data, **CAPS)


def test_a_symlink_in_a_zip_refuses_it(make_image):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.png", make_image())
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a symlink
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveRejected, match=r"symbolic link \('link\.png'\)"):
        unpack(out.getvalue(), **CAPS)


def test_folders_hidden_files_and_archivers_junk_are_skipped(make_image):
    image = make_image()
    members = [
        ("photos/", b""),
        ("photos/a.png", image),
        ("__MACOSX/photos/._a.png", b"\x00\x05\x16\x07 resource fork"),
        ("photos/._a.png", b"\x00\x05\x16\x07"),
        (".DS_Store", b"Bud1"),
        ("photos/.DS_Store", b"Bud1"),
        (".git/config", b"[core]"),
        ("photos/Thumbs.db", b"\xd0\xcf"),
        ("desktop.ini", b"[.ShellClassInfo]"),
        ("photos/b.png", image),
    ]
    expected = [("photos/a.png", image), ("photos/b.png", image)]
    assert unpack(make_zip(members), max_files=2, max_bytes=10 * MB) == expected  # the junk is not counted
    tar_members = [tar_member("photos", kind=tarfile.DIRTYPE)] + [tar_member(n, d) for n, d in members[1:]]
    assert unpack(make_tar(tar_members, "gz"), max_files=2, max_bytes=10 * MB) == expected


def test_an_archive_inside_is_just_a_file(pngs):
    inner = make_zip(pngs)
    assert unpack(make_zip([("inner.zip", inner)]), **CAPS) == [("inner.zip", inner)]


def test_an_encrypted_zip_is_refused(pngs):
    data = bytearray(make_zip(pngs[:1]))
    struct.pack_into("<H", data, 6, 0x1)  # the local header's flags: encrypted
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 0x1)  # and the central directory's
    with pytest.raises(ArchiveRejected, match="encrypted"):
        unpack(bytes(data), **CAPS)


# -- caps and bombs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_too_many_files_are_refused(fmt):
    members = [(f"{i}.png", b"x") for i in range(5)]
    data = make_zip(members) if fmt == "zip" else make_tar(members, "gz")
    assert len(unpack(data, max_files=5, max_bytes=MB)) == 5
    with pytest.raises(ArchiveTooLarge, match=r"^The upload holds more than 4 files; that is the limit\.$"):
        unpack(data, max_files=4, max_bytes=MB)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_files_over_the_byte_cap_are_refused(fmt):
    members = [(f"{i}.png", os.urandom(40_000)) for i in range(3)]
    data = make_zip(members) if fmt == "zip" else make_tar(members, "gz")
    assert len(unpack(data, max_files=10, max_bytes=120_000)) == 3
    with pytest.raises(ArchiveTooLarge, match=r"more than 0\.1 MB uncompressed"):
        unpack(data, max_files=10, max_bytes=100_000)


def bounded(call: Callable[[], object]) -> tuple[BaseException, float, int]:
    """What `call` raises, how long it took and its peak of Python memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except BaseException as exc:  # returned to the test, which checks it
        raised = exc
    else:
        raise AssertionError("it did not refuse")
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, elapsed, peak


BOMB = 64 * MB  # zeros: compressed to about 64 KB


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("zeros.png", "w") as member:
        for _ in range(BOMB // MB):
            member.write(bytes(MB))
    return out.getvalue()


def test_a_zip_bomb_is_stopped_before_it_expands():
    data = zip_bomb()
    assert len(data) < BOMB // 100
    raised, elapsed, peak = bounded(lambda: unpack(data, max_files=10, max_bytes=MB))
    assert isinstance(raised, ArchiveTooLarge)
    assert peak < 8 * MB and elapsed < 5


def test_a_zip_bomb_that_lies_about_its_size_is_stopped_too():
    data = bytearray(zip_bomb())
    # Declare 1000 bytes in the local header and in the central directory: well under the cap.
    struct.pack_into("<I", data, 22, 1000)
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.getinfo("zeros.png").file_size == 1000  # what a trusting reader would believe
    raised, elapsed, peak = bounded(lambda: unpack(bytes(data), max_files=10, max_bytes=MB))
    assert isinstance(raised, ArchiveRejected)  # never more than the declared bytes, and those fail the CRC
    assert "damaged" in str(raised)
    assert peak < 8 * MB and elapsed < 5


def test_a_tar_gz_bomb_is_stopped_before_it_expands():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("zeros.png")
        info.size = BOMB
        archive.addfile(info, io.BytesIO(bytes(BOMB)))
    data = out.getvalue()
    assert len(data) < BOMB // 100
    raised, elapsed, peak = bounded(lambda: unpack(data, max_files=10, max_bytes=MB))
    assert isinstance(raised, ArchiveTooLarge)
    assert peak < 8 * MB and elapsed < 5


def test_a_tar_whose_headers_expand_without_end_is_stopped():
    # A GNU long name is read whole by tarfile before any member is seen: only the capped stream stops it.
    data = make_tar([tar_member("a" * (16 * MB), b"x")], "gz")
    raised, elapsed, peak = bounded(lambda: unpack(data, max_files=10, max_bytes=MB))
    assert isinstance(raised, ArchiveTooLarge)
    assert "unpacks to more than" in str(raised)
    assert peak < 12 * MB and elapsed < 5


# -- many files instead of an archive ------------------------------------------------------------


def test_many_files_are_taken_like_the_members_of_an_archive(pngs):
    assert from_files(pngs + [(".DS_Store", b"Bud1"), ("._0.png", b"")], **CAPS) == pngs
    with pytest.raises(ArchiveRejected, match="leads out of the archive"):
        from_files([("../0.png", pngs[0][1])], **CAPS)
    with pytest.raises(ArchiveTooLarge, match="more than 2 files"):
        from_files(pngs, max_files=2, max_bytes=MB)
    with pytest.raises(ArchiveTooLarge, match="uncompressed"):
        from_files(pngs, max_files=10, max_bytes=len(pngs[0][1]) * 2)


# -- checking the images -------------------------------------------------------------------------


def test_readable_images_come_back_in_order(pngs):
    assert check_images(pngs, min_images=3, what="photos", max_pixels=10_000) == [data for _, data in pngs]


def test_unreadable_files_refuse_the_upload_and_are_counted(make_image):
    good = [(f"{i}.png", make_image(seed=i)) for i in range(7)]
    bad = [("a.txt", b"hello"), ("b.gif", make_image(fmt="GIF")), ("c.png", make_image()[:60])]
    files = good[:3] + bad + good[3:]
    with pytest.raises(ArchiveRejected) as caught:
        check_images(files, min_images=4, what="photos", max_pixels=10_000)
    message = str(caught.value)
    assert message.startswith("photos: 3 of 10 files are not images we can read: 'a.txt' (This is not an image")
    assert "'b.gif' (This is a GIF file" in message and "'c.png' (The image is damaged or truncated" in message
    assert message.endswith("; remove them and send the other 7 again.")
    with pytest.raises(ArchiveRejected, match=r"; at least 8 readable images are needed, 7 found\.$"):
        check_images(files, min_images=8, what="photos", max_pixels=10_000)


def test_an_image_over_the_pixel_cap_is_one_we_cannot_take(make_image):
    files = [("big.png", make_image(200, 100))] + [(f"{i}.png", make_image(seed=i)) for i in range(4)]
    with pytest.raises(ArchiveRejected, match=r"^paintings: 1 of 5 files is not an image we can read: 'big\.png' "):
        check_images(files, min_images=4, what="paintings", max_pixels=10_000)


def test_at_most_five_unreadable_files_are_named():
    files = [(f"{i}.txt", b"text") for i in range(8)]
    with pytest.raises(ArchiveRejected) as caught:
        check_images(files, min_images=16, what="images", max_pixels=10_000)
    message = str(caught.value)
    assert message.startswith("images: 8 of 8 files are not images we can read: '0.txt' (")
    assert "'4.txt'" in message and "'5.txt'" not in message
    assert message.endswith(" and 3 more; at least 16 readable images are needed, 0 found.")


def test_too_few_images_are_refused_with_the_count(pngs):
    with pytest.raises(ArchiveRejected, match=r"^photos: at least 4 readable images are needed, 3 found\.$"):
        check_images(pngs, min_images=4, what="photos", max_pixels=10_000)
    with pytest.raises(ArchiveRejected, match=r"^images: at least 16 readable images are needed, 0 found\.$"):
        check_images([], min_images=16, what="images", max_pixels=10_000)


# -- nothing on disk -----------------------------------------------------------------------------


def test_nothing_is_ever_written_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pngs):
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    archives = [make_zip(pngs), *(make_tar(pngs, c) for c in ("", "gz", "bz2", "xz"))]
    hostile = [
        make_zip([("../escape.png", pngs[0][1])]),
        make_tar([tar_member("link.png", kind=tarfile.SYMTYPE, link="/etc/passwd")]),
        make_tar([tar_member("/tmp/abs.png", pngs[0][1])], "gz"),
    ]

    def no_files(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"opened a file: {args}")

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "open", no_files)
        patched.setattr(io, "open", no_files)
        patched.setattr(os, "open", no_files)
        for data in archives:
            images = check_images(unpack(data, **CAPS), min_images=3, what="photos", max_pixels=10_000)
            assert len(images) == 3
        for data in hostile:
            with pytest.raises(ArchiveRejected):
                unpack(data, **CAPS)
    assert list(work.iterdir()) == [] and list(temp.iterdir()) == []
    assert not (tmp_path / "escape.png").exists()
