"""fsck and gc against a real store and catalog, and the `deep-painting fsck` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from painting.catalog import Catalog
from painting.cli import fsck_main, gc_main
from painting.fsck import fsck, gc
from painting.images import ImageRef, ImageStore
from painting.params import Params
from painting.records import Status

ImageMaker = Callable[..., bytes]


def painting_with_images(
    catalog: Catalog, store: ImageStore, make_image: ImageMaker, seed: int
) -> tuple[str, list[ImageRef]]:
    refs = [store.put(make_image(16, 16, seed=seed * 10 + i)) for i in range(4)]
    content, style, preview, result = refs
    rec = catalog.create(params=Params(), content_image=content.id, style_images=[style.id])
    catalog.transition(rec.id, Status.DONE, preview_image=preview.id, result_image=result.id)
    return rec.id, refs


def corrupt(store: ImageStore, image_id: str) -> None:
    path = store.path(image_id)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x55
    path.write_bytes(bytes(data))


def test_fsck_finds_missing_and_corrupt_images(catalog: Catalog, store: ImageStore, make_image: ImageMaker) -> None:
    good, _ = painting_with_images(catalog, store, make_image, 1)
    bad, refs = painting_with_images(catalog, store, make_image, 2)
    stray = store.put(make_image(8, 8, seed=999))
    report = fsck(catalog, store)
    assert report.ok and report.paintings == 2 and report.images == 8 and report.unreferenced == 1

    corrupt(store, refs[1].id)  # the style image
    store.delete(refs[3].id)  # the result
    report = fsck(catalog, store)
    assert not report.ok
    found = {(p.painting_id, p.role, p.image_id, p.kind) for p in report.problems}
    assert found == {(bad, "style", refs[1].id, "corrupt"), (bad, "result", refs[3].id, "missing")}
    assert all(bad in p.message for p in report.problems)
    assert good not in {p.painting_id for p in report.problems}
    assert stray.id not in {p.image_id for p in report.problems}


def test_gc_removes_only_unreferenced_images_after_the_grace_period(
    catalog: Catalog, store: ImageStore, make_image: ImageMaker
) -> None:
    keep, keep_refs = painting_with_images(catalog, store, make_image, 1)
    gone, gone_refs = painting_with_images(catalog, store, make_image, 2)
    shared = keep_refs[0]
    catalog.create(params=Params(), content_image=gone_refs[0].id, style_images=[shared.id])
    catalog.delete(gone)
    orphans = {r.id for r in gone_refs[1:]}

    report = gc(store, catalog)  # everything is recent: the grace period keeps it all
    assert report.removed == () and report.too_recent == len(orphans)

    assert set(gc(store, [catalog], grace_s=0, dry_run=True).removed) == orphans
    assert all(store.exists(i) for i in orphans)
    report = gc(store, [catalog], grace_s=0)
    assert set(report.removed) == orphans
    assert set(store) == {r.id for r in keep_refs} | {gone_refs[0].id}
    assert fsck(catalog, store).ok
    assert catalog.get(keep).status is Status.DONE


def test_gc_grace_protects_an_image_stored_again(catalog: Catalog, store: ImageStore, make_image: ImageMaker) -> None:
    data = make_image(8, 8, seed=5)
    ref = store.put(data)
    os.utime(store.path(ref.id), (time.time() - 7200,) * 2)
    store.put(data)  # a new painting is about to use it
    assert gc(store, catalog).removed == ()
    assert store.exists(ref.id)


def test_gc_cleans_stale_temp_files(catalog: Catalog, store: ImageStore, make_image: ImageMaker) -> None:
    ref = store.put(make_image())
    temp = store.path(ref.id).parent / ".tmp-dead.part"
    temp.write_bytes(b"partial")
    os.utime(temp, (time.time() - 7200,) * 2)
    assert gc(store, catalog).temp_removed == 1
    assert not temp.exists()


def test_gc_with_no_grace_leaves_a_write_in_progress_alone(
    catalog: Catalog, store: ImageStore, make_image: ImageMaker
) -> None:
    # A Gallery collecting every half second with no grace once removed another thread's temp
    # file between its write and its rename: the upload failed with 503 "No such file or directory".
    ref = store.put(make_image())
    in_flight = store.path(ref.id).parent / ".tmp-writing.part"
    in_flight.write_bytes(b"half written")
    assert gc(store, catalog, grace_s=0).temp_removed == 0
    assert in_flight.exists()


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, make_image: ImageMaker) -> tuple[Path, list[ImageRef]]:
    data = tmp_path / "data"
    store = ImageStore(data / "images")
    with Catalog.open(None, data) as catalog:
        _, refs = painting_with_images(catalog, store, make_image, 3)
    return data, refs


def test_fsck_command_passes_then_reports_a_corrupted_image(
    data_dir: tuple[Path, list[ImageRef]], capsys: pytest.CaptureFixture[str]
) -> None:
    data, refs = data_dir
    assert fsck_main(["--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "OK: checked 1 painting(s) and 4 image(s)" in err

    corrupt(ImageStore(data / "images"), refs[0].id)
    assert fsck_main(["--data-dir", str(data)]) == 1
    out, err = capsys.readouterr()
    assert f"content image '{refs[0].id}' is corrupt" in out
    assert "1 problem(s)" in err


def test_fsck_command_refuses_a_folder_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fsck_main(["--data-dir", str(tmp_path / "typo")]) == 2
    assert "no painting database" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_fsck_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        fsck_main(["--help"])
    assert info.value.code == 0
    assert "--data-dir" in capsys.readouterr().out


def test_gc_command(
    data_dir: tuple[Path, list[ImageRef]], make_image: ImageMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    data, refs = data_dir
    stray = ImageStore(data / "images").put(make_image(8, 8, seed=77))
    assert gc_main(["--data-dir", str(data), "--grace", "0"]) == 0
    assert "removed 1 image(s)" in capsys.readouterr().err
    assert not ImageStore(data / "images").exists(stray.id)


def test_deep_painting_fsck_runs_as_a_real_command(data_dir: tuple[Path, list[ImageRef]]) -> None:
    data, refs = data_dir
    exe = shutil.which("deep-painting", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "deep_painting"]  # the console script, or its module
    ok = subprocess.run(
        [*command, "fsck", "--data-dir", str(data)], capture_output=True, text=True, timeout=60, check=False
    )
    assert ok.returncode == 0, ok.stderr
    ImageStore(data / "images").delete(refs[2].id)
    bad = subprocess.run(
        [*command, "fsck", "--data-dir", str(data)], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1
    assert f"preview image '{refs[2].id}' is missing from the image store" in bad.stdout
