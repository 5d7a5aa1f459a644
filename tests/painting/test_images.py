"""The image store: checks on the way in, content addressing, id validation, atomic writes."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from painting.errors import ImageRejected, ImageTooLarge, InvalidId, InvalidImage, NotFound
from painting.images import ImageRef, ImageStore, check_image_id, inspect_image, is_image_id, is_temp_name

from support import phone_photo

ImageMaker = Callable[..., bytes]
HYPOTHESIS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header declares width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
        + png_chunk(b"IEND", b"")
    )


# -- storing and reading -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_put_stores_content_addressed_and_reads_back(make_image: ImageMaker, store: ImageStore, fmt: str) -> None:
    data = make_image(40, 30, fmt)
    ref = store.put(data)
    assert ref == ImageRef(id=hashlib.sha256(data).hexdigest(), width=40, height=30, format=fmt, size=len(data))
    assert ref.media_type == f"image/{fmt.lower()}"
    assert store.exists(ref.id)
    assert store.read(ref.id) == data
    with store.open(ref.id) as f:
        assert f.read() == data
    assert store.path(ref.id) == store.root / ref.id[:2] / ref.id
    assert store.ref(ref.id) == ref
    assert store.verify(ref.id)
    assert list(store) == [ref.id]


def test_putting_the_same_bytes_again_is_a_no_op(make_image: ImageMaker, store: ImageStore) -> None:
    data = make_image()
    ref = store.put(data)
    path = store.path(ref.id)
    os.utime(path, (1_000_000, 1_000_000))
    inode = path.stat().st_ino
    assert store.put(data) == ref
    assert path.stat().st_ino == inode  # not rewritten ...
    assert path.stat().st_mtime > 1_000_000  # ... but refreshed, for gc's grace period
    assert all_files(store.root) == [path]


def test_put_repairs_a_damaged_copy(make_image: ImageMaker, store: ImageStore) -> None:
    data = make_image()
    ref = store.put(data)
    store.path(ref.id).chmod(0o644)
    store.path(ref.id).write_bytes(data[:10])
    assert not store.verify(ref.id)
    store.put(data)
    assert store.verify(ref.id) and store.read(ref.id) == data


def test_delete_and_missing_images(make_image: ImageMaker, store: ImageStore) -> None:
    ref = store.put(make_image())
    assert store.delete(ref.id)
    assert not store.delete(ref.id)
    assert not store.exists(ref.id)
    for op in (store.path, store.open, store.read, store.ref, store.verify, store.mtime):
        with pytest.raises(NotFound) as info:
            op(ref.id)
        assert info.type is NotFound  # well-formed but absent: not an InvalidId
    assert list(store) == []


def test_verify_detects_changed_bytes(make_image: ImageMaker, store: ImageStore) -> None:
    ref = store.put(make_image())
    path = store.path(ref.id)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert not store.verify(ref.id)


def test_iteration_skips_temp_files_and_strays(make_image: ImageMaker, store: ImageStore) -> None:
    a, b = store.put(make_image(seed=1)), store.put(make_image(seed=2))
    shard = store.root / a.id[:2]
    (shard / ".tmp-abc.part").write_bytes(b"half")
    (shard / "notes.txt").write_text("x")
    (store.root / "README").write_text("x")
    wrong_shard = store.root / ("00" if a.id[:2] != "00" else "11")
    wrong_shard.mkdir(exist_ok=True)
    (wrong_shard / a.id).write_bytes(b"misplaced")
    (store.root / "abc").mkdir()
    assert list(store) == sorted([a.id, b.id])


def test_cleanup_temp_removes_only_old_temp_files(make_image: ImageMaker, store: ImageStore) -> None:
    ref = store.put(make_image())
    shard = store.root / ref.id[:2]
    old, fresh = shard / ".tmp-old.part", shard / ".tmp-new.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 7200,) * 2)
    assert store.cleanup_temp() == 1
    assert not old.exists() and fresh.exists()
    assert store.cleanup_temp(older_than_s=0) == 1
    assert all_files(store.root) == [store.path(ref.id)]


# -- refusals: the right error, nothing stored ---------------------------------------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


REFUSED: dict[str, tuple[Callable[[ImageMaker], bytes], type[ImageRejected]]] = {
    "empty": (lambda mk: b"", InvalidImage),
    "text file": (lambda mk: b"Just some words, not a picture.\n" * 10, InvalidImage),
    "truncated PNG": (lambda mk: truncated(mk(64, 64, "PNG")), InvalidImage),
    "truncated JPEG": (lambda mk: truncated(mk(64, 64, "JPEG")), InvalidImage),
    "PNG with a bad CRC": (
        lambda mk: mk(8, 8)[:29] + b"\x00\x00\x00\x00" + mk(8, 8)[33:],
        InvalidImage,
    ),
    "GIF (not accepted)": (lambda mk: mk(16, 16, "GIF"), InvalidImage),
    "BMP (not accepted)": (lambda mk: mk(16, 16, "BMP"), InvalidImage),
    "PNG header only": (lambda mk: mk(16, 16)[:33], InvalidImage),
    "decompression bomb 100000x100000": (lambda mk: bomb_png(100_000, 100_000), ImageTooLarge),
    "decompression bomb 10000x10000": (lambda mk: bomb_png(10_000, 10_000), ImageTooLarge),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_input_is_refused_with_the_right_error(store: ImageStore, make_image: ImageMaker, case: str) -> None:
    make, error = REFUSED[case]
    data = make(make_image)
    started = time.perf_counter()
    with pytest.raises(ImageRejected) as info:
        store.put(data)
    assert info.type is error
    assert time.perf_counter() - started < 1.0
    assert str(info.value) and "/" not in str(info.value)  # a sentence for a person, no paths
    assert all_files(store.root) == []


def test_byte_cap_is_checked_before_parsing(make_image: ImageMaker, tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_bytes=100)
    data = make_image(32, 32)
    assert len(data) > 100
    with pytest.raises(ImageTooLarge, match="limit is 0.0 MB"):
        store.put(data)
    with pytest.raises(ImageTooLarge):
        store.put(b"\x00" * 101)  # not even an image: the cap answers first
    assert all_files(tmp_path) == []


def test_pixel_cap(make_image: ImageMaker, tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_pixels=32 * 24 - 1)
    with pytest.raises(ImageTooLarge, match="32 × 24 pixels"):
        store.put(make_image(32, 24))
    assert store.put(make_image(31, 24)).width == 31


def test_bomb_is_refused_from_the_header_without_decoding(monkeypatch: pytest.MonkeyPatch, store: ImageStore) -> None:
    # Our cap must hold even where someone turned Pillow's global check off.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for w, h in [(100_000, 100_000), (10_000, 10_000), (40_000, 1_001)]:
        started = time.perf_counter()
        with pytest.raises(ImageTooLarge, match="limit is 40.0 megapixels"):
            store.put(bomb_png(w, h))
        assert time.perf_counter() - started < 0.1
    assert all_files(store.root) == []


def test_inspect_stores_nothing(make_image: ImageMaker, tmp_path: Path) -> None:
    data = make_image(10, 10, "WEBP")
    assert inspect_image(data).format == "WEBP"
    with pytest.raises(TypeError):
        inspect_image("not bytes")  # type: ignore[arg-type]
    assert all_files(tmp_path) == []


# -- ids -----------------------------------------------------------------------------------------

NASTY_IDS = [
    "",
    "..",
    "../" + "a" * 61,
    "/etc/passwd",
    "/" + "a" * 63,
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 63 + "\n",
    "a" * 63 + "\x00",
    "\x00" * 64,
    "ab/" + "c" * 61,
    "ab\\" + "c" * 61,
    "٣" * 64,  # Arabic-Indic digits: \d would take them
    "a" * 32 + "/" + "a" * 31,
    "%2e%2e%2f" + "a" * 55,
    None,
    b"a" * 64,
    42,
]


@pytest.mark.parametrize("bad", NASTY_IDS, ids=repr)
def test_malformed_ids_never_reach_the_filesystem(store: ImageStore, bad: object) -> None:
    assert not is_image_id(bad)
    assert not store.exists(bad)  # type: ignore[arg-type]
    ops: list[Callable[[Any], object]] = [  # ill-typed ids on purpose: each must be refused
        check_image_id,
        store.path,
        store.open,
        store.read,
        store.delete,
        store.ref,
        store.verify,
        store.mtime,
    ]
    for op in ops:
        with pytest.raises(InvalidId):
            op(bad)


@HYPOTHESIS
@given(
    candidate=st.one_of(
        st.text(max_size=80),
        st.from_regex(r"[0-9a-fA-F./\\\x00\n -]{62,66}", fullmatch=True),
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    )
)
def test_no_string_ever_becomes_a_path_outside_the_root(store: ImageStore, candidate: str) -> None:
    try:
        accepted = check_image_id(candidate)
    except InvalidId:
        assert not store.exists(candidate)
        with pytest.raises(InvalidId):
            store.path(candidate)
        return
    assert accepted == candidate and len(candidate) == 64 and set(candidate) <= set("0123456789abcdef")
    with pytest.raises(NotFound):
        store.path(candidate)
    path = store._file(candidate).resolve()
    assert path.parent.parent == store.root and path.name == candidate


@HYPOTHESIS
@given(
    size=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    fmt_mode=st.sampled_from(
        [
            ("PNG", "RGB"),
            ("PNG", "L"),
            ("PNG", "RGBA"),
            ("JPEG", "RGB"),
            ("JPEG", "L"),
            ("WEBP", "RGB"),
            ("WEBP", "RGBA"),
        ]
    ),
    seed=st.integers(0, 10_000),
)
def test_put_read_round_trip(
    make_image: ImageMaker, store: ImageStore, size: tuple[int, int], fmt_mode: tuple[str, str], seed: int
) -> None:
    fmt, mode = fmt_mode
    data = make_image(*size, fmt, seed=seed, mode=mode)
    ref = store.put(data)
    assert ref.id == hashlib.sha256(data).hexdigest()
    assert (ref.width, ref.height, ref.format, ref.size) == (*size, fmt, len(data))
    assert store.read(ref.id) == data
    assert store.put(data) == ref
    assert ref.id in set(store)


# -- killed writers ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import io, os, sys
    from PIL import Image
    from painting.images import ImageStore

    store = ImageStore(sys.argv[1])
    noise = bytearray(os.urandom(256 * 256 * 3))
    print("ready", flush=True)
    i = 0
    while True:
        noise[:8] = i.to_bytes(8, "little")
        i += 1
        buf = io.BytesIO()
        Image.frombytes("RGB", (256, 256), bytes(noise)).save(buf, "PNG", compress_level=0)
        store.put(buf.getvalue())  # about 200 kB: the kill often lands inside the write
    """
)


@pytest.mark.slow
def test_a_writer_killed_at_random_never_leaves_a_partial_file(tmp_path: Path) -> None:
    root = tmp_path / "images"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(20240601)
    temp_seen: set[str] = set()
    deadline = time.monotonic() + 20
    for _ in range(24):
        if time.monotonic() > deadline:
            break
        with subprocess.Popen(
            [sys.executable, str(script), str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == b"ready\n", proc.stderr.read() if proc.stderr else line
            time.sleep(rng.uniform(0.0, 0.12))
            assert proc.poll() is None, "the writer died on its own"
            proc.kill()
            proc.wait()
        temp_seen.update(p.name for p in root.rglob("*") if is_temp_name(p.name))

    finals, temps = [], []
    for path in all_files(root):
        if is_temp_name(path.name):
            temps.append(path)
            continue
        assert is_image_id(path.name) and path.parent.name == path.name[:2], path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"partial file {path}"
        finals.append(path.name)
    assert len(finals) >= 10, "the writers barely wrote anything; the test proves little"
    store = ImageStore(root)
    assert list(store) == sorted(finals)
    assert store.cleanup_temp(older_than_s=0) == len(temps)
    assert all(not is_temp_name(p.name) for p in all_files(root))
    print(f"{len(finals)} images intact; temp files: {len(temps)} at the end, {len(temp_seen)} seen in all")


def test_a_phone_photo_is_accepted_and_served_as_a_jpeg(store: ImageStore) -> None:
    data = phone_photo(40, 24)
    ref = store.put(data)
    assert (ref.format, ref.media_type, ref.width, ref.height) == ("MPO", "image/jpeg", 40, 24)
    assert store.read(ref.id) == data
    assert store.ref(ref.id) == ref


@pytest.mark.parametrize(
    ("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("ICO", "ICO"), ("PCX", None)]
)
def test_other_formats_are_refused_by_name(make_image: ImageMaker, fmt: str, name: str | None) -> None:
    with pytest.raises(InvalidImage) as info:
        inspect_image(make_image(16, 16, fmt))
    said = str(info.value)
    assert "PNG, JPEG, WEBP and HEIC are accepted" in said
    assert (f"This is a {name} file" in said) if name else ("not an image we can read" in said)


def test_put_all_checks_every_image_before_storing_any(make_image: ImageMaker, store: ImageStore) -> None:
    good, bad = make_image(16, 16), b"GIF89a not really"
    with pytest.raises(InvalidImage, match=r"^style 2: This is a GIF file"):
        store.put_all([("content", good), ("style 1", good), ("style 2", bad)])
    assert all_files(store.root) == []
    refs = store.put_all([("content", good), ("style", make_image(8, 8, seed=3))])
    assert [store.exists(r.id) for r in refs] == [True, True] and len(all_files(store.root)) == 2


def test_put_all_decodes_each_image_once(make_image: ImageMaker, store: ImageStore, monkeypatch) -> None:
    from painting import images

    calls: list[int] = []
    real = images.open_image

    def counting(data: bytes, **caps: int) -> Image.Image:
        calls.append(len(data))
        return real(data, **caps)

    monkeypatch.setattr(images, "open_image", counting)
    store.put_all([("content", make_image(16, 16)), ("style", make_image(8, 8, seed=3))])
    assert len(calls) == 2
