"""Delete means delete: a painting deleted in Gallery is gone from Gallery's store and from Studio's
(record and images), and Studio keeps a finished job's photo no longer than its retention period.
Gallery and Studio run for real on loopback; Studio's worker is the fake one."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from painting.catalog import Catalog
from painting.images import ImageStore

import studio_process
from support import png, wait_for


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[studio_process.StudioProcess]:
    running = studio_process.StudioProcess(
        tmp_path / "studio",
        [sys.executable, studio_process.FAKE_WORKER],
        # A second of grace: collection every half second must not take an upload before its record.
        STUDIO_GC_GRACE_S="1",
        STUDIO_GC_INTERVAL_S="0.5",
        STUDIO_RETENTION_S="2",
    )
    try:
        running.wait_ready(30)
        yield running
    finally:
        running.stop()


def studio_job(studio: studio_process.StudioProcess, painting_id: str) -> str | None:
    with Catalog.open(None, studio.data_dir, scope="studio", migrate=False) as jobs:
        job = jobs.find_by_idempotency_key(painting_id)
        return None if job is None else job.id


def stored(data_dir: Path) -> set[str]:
    return set(ImageStore(data_dir / "images"))


def test_a_deleted_painting_is_gone_from_both_stores(studio, gallery_factory):
    # Its replaced previews go with the periodic collection (every GALLERY_GC_INTERVAL_S; 0.5 s here).
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN, gc_grace_s=1, gc_interval_s=0.5)
    photo = png(52, 40, (250, 1, 99))
    painting = gallery.post_painting({"size": 48, "iterations": 3, "preview_every": 1}, content=photo).json()
    done = gallery.wait_status(painting["id"], {"done"}, 30)
    job_id = studio_job(studio, painting["id"])
    assert job_id is not None and done["content_image"] in stored(studio.data_dir)

    assert gallery.client.delete(f"/api/paintings/{painting['id']}").status_code == 204
    assert gallery.client.get(f"/api/paintings/{painting['id']}").status_code == 404
    wait_for(lambda: studio.client.get(f"/v1/jobs/{job_id}").status_code == 404, 10, "forgotten by Studio")
    for image_id in (done["content_image"], done["result_image"]):
        wait_for(functools.partial(gone, gallery.client, f"/api/images/{image_id}"), 10, "gone from Gallery")
        wait_for(functools.partial(gone, studio.client, f"/v1/images/{image_id}"), 10, "gone from Studio")
    wait_for(lambda: stored(gallery.settings.data_dir) == set(), 10, "nothing left in Gallery's store")
    wait_for(lambda: stored(studio.data_dir) == set(), 10, "nothing left in Studio's store")


def gone(client, url: str) -> bool:
    return client.get(url).status_code == 404


def test_thirty_creates_and_deletes_leave_nothing_behind(studio, gallery_factory):
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN, gc_grace_s=1, gc_interval_s=0.5)
    for i in range(30):
        response = gallery.post_painting({"size": 48, "iterations": 2}, content=png(40 + i, 40))
        assert response.status_code == 201, (i, response.status_code, response.text)
        painting = response.json()
        gallery.wait_status(painting["id"], {"done"}, 30)
        assert gallery.client.delete(f"/api/paintings/{painting['id']}").status_code == 204
    assert gallery.client.get("/api/paintings").json()["total"] == 0
    with Catalog.open(None, studio.data_dir, scope="studio", migrate=False) as jobs:
        wait_for(lambda: jobs.count() == 0, 20, "every Studio job forgotten")
    wait_for(lambda: stored(studio.data_dir) == set(), 10, "every Studio image removed")
    wait_for(lambda: stored(gallery.settings.data_dir) == set(), 10, "every Gallery image removed")


def test_studio_forgets_a_finished_job_after_its_retention_period(studio, gallery_factory):
    gallery = gallery_factory(studio.url, studio_token=studio_process.TOKEN)
    painting = gallery.post_painting({"size": 48, "iterations": 2}).json()
    done = gallery.wait_status(painting["id"], {"done"}, 30)
    job_id = studio_job(studio, painting["id"])
    assert job_id is not None
    wait_for(lambda: studio.client.get(f"/v1/jobs/{job_id}").status_code == 404, 15, "forgotten after 2 s")
    assert gallery.painting(painting["id"])["status"] == "done"  # Gallery keeps the painting it made
    assert gallery.client.get(f"/api/images/{done['result_image']}").status_code == 200
