"""A pool of Studios: paintings spread over three real Studio processes (each its own data folder and
workers that speak the real protocol), one killed for good mid-painting, its paintings finished on
the others from their latest previews, and its jobs forgotten when it comes back."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from gallery.settings import GallerySettings
from painting.catalog import Catalog
from painting.images import ImageStore
from painting.records import PaintingRecord, Status

from studio_process import FAKE_WORKER, TOKEN, StudioProcess

PAINTINGS = 12
ITERATIONS = 150


def records(settings: GallerySettings) -> list[PaintingRecord]:
    with Catalog.open(None, settings.data_dir, scope="gallery", migrate=False) as catalog:
        return catalog.newest(limit=100)


def start_studio(root: Path, name: str, **env: str) -> StudioProcess:
    studio = StudioProcess(
        root / name,
        [sys.executable, FAKE_WORKER],
        STUDIO_WORKERS="2",
        FAKE_SECONDS_PER_ITERATION="0.04",
        **env,
    )
    studio.wait_ready(60)
    return studio


def test_paintings_spread_over_three_studios_and_survive_losing_one_for_good(tmp_path, gallery_factory, wait_for):
    studios = [start_studio(tmp_path, f"studio-{i}") for i in range(3)]
    try:
        gallery = gallery_factory(
            "http://127.0.0.1:9",  # not used: the pool is the list below
            studios=[{"url": s.url, "token": TOKEN, "name": f"studio-{i}"} for i, s in enumerate(studios)],
            studio_poll_s=0.3,
            studio_grace_s=2.0,
        )
        params = {"size": 48, "iterations": ITERATIONS, "preview_every": 10}
        ids = [gallery.post_painting(params).json()["id"] for _ in range(PAINTINGS)]

        def placed() -> list[PaintingRecord] | None:
            found = [r for r in records(gallery.settings) if r.remote_url is not None]
            return found if len(found) == PAINTINGS else None

        wait_for(placed, 30, "every painting sent to a Studio")
        per_studio = {s.url: sum(r.remote_url == s.url for r in placed() or []) for s in studios}
        assert all(n >= 2 for n in per_studio.values()), per_studio  # spread over all three (2 workers each)

        victim = studios[0]

        def under_way() -> dict[str, PaintingRecord]:
            return {r.id: r for r in records(gallery.settings) if r.remote_url == victim.url and not r.finished}

        # Kill it for good once two of its paintings have previews to resume from.
        wait_for(lambda: sum((r.preview_iteration or 0) >= 20 for r in under_way().values()) >= 2, 60, "under way")
        on_victim = under_way()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        victim.client.close()
        victim.log.close()

        ends = {"done", "failed", "cancelled"}
        finished = [gallery.wait_status(painting_id, ends, timeout=180) for painting_id in ids]
        assert [p["status"] for p in finished] == ["done"] * PAINTINGS, [p.get("error") for p in finished]

        now = {r.id: r for r in records(gallery.settings)}
        store = ImageStore(gallery.settings.data_dir / "images")
        survivors = {s.url: s for s in studios[1:]}
        moved = {i for i, r in now.items() if r.attempts > 0}
        # Every painting under way on the victim moved (bar one whose end was on its way as it died).
        assert moved <= set(on_victim) and len(moved) >= max(2, len(on_victim) - 1), (moved, set(on_victim))
        for painting_id in moved:
            before, after = on_victim[painting_id], now[painting_id]
            assert after.remote_url in survivors and after.attempts == before.attempts + 1
            # The stand-in's result of a resumed run is its init image: the preview Gallery held, whose
            # first pixel says the iteration it showed. Resumed there, not painted again from the start.
            if (before.preview_iteration or 0) >= 20:
                with Image.open(io.BytesIO(store.read(after.result_image or ""))) as result:
                    red, green, _ = result.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
                assert red + 256 * green >= (before.preview_iteration or 0)
        # One result each: every painting's one job is done, on a surviving Studio for those that moved.
        for record in now.values():
            if record.id not in moved and record.remote_url == victim.url:
                continue  # it ended there before the victim died
            job = survivors[record.remote_url or ""].client.get(f"/v1/jobs/{record.remote_id}").json()
            assert job["state"] == "done" and job["iteration"] == ITERATIONS

        metrics = gallery.client.get("/metrics").text
        moves = next(line for line in metrics.splitlines() if line.startswith("gallery_studio_moves_total"))
        assert float(moves.split()[-1]) == len(moved)
        assert 'gallery_studio_up{studio="studio-0"} 0.0' in metrics

        # The victim returns (same folder, same address): Gallery has it forget every job it no
        # longer needs, so it never paints them to the end either.
        studios[0] = start_studio(tmp_path, "studio-0", STUDIO_PORT=str(victim.port))

        def forgotten() -> bool:
            jobs = [on_victim[i].remote_id for i in moved]
            return all(studios[0].client.get(f"/v1/jobs/{job}").status_code == 404 for job in jobs)

        wait_for(forgotten, 30, "the returned Studio told to forget the moved paintings' jobs")
        with Catalog.open(None, gallery.settings.data_dir, scope="gallery", migrate=False) as catalog:
            wait_for(lambda: catalog.remote_actions() == [], 10, "nothing left to tell any Studio")
        assert all(now[i].status == Status.DONE for i in ids)
    finally:
        for studio in studios:
            if studio.proc.poll() is None:
                studio.stop()


def test_a_painting_no_studio_can_paint_fails_saying_why_for_each(tmp_path, gallery_factory, wait_for):
    studios = [start_studio(tmp_path, f"small-{i}", STUDIO_MEMORY_BUDGET_BYTES="1000000") for i in range(2)]
    try:
        gallery = gallery_factory(
            "http://127.0.0.1:9",
            studios=[{"url": s.url, "token": TOKEN, "name": f"small-{i}"} for i, s in enumerate(studios)],
            studio_poll_s=0.3,
        )
        wait_for(lambda: "gallery_studio_workers_ready" in gallery.client.get("/metrics").text, 10, "read")
        painting = gallery.post_painting({"size": 48, "iterations": 5})
        assert painting.status_code == 201, painting.text
        failed = gallery.wait_status(painting.json()["id"], {"failed"}, timeout=30)
        assert failed["error"].startswith("No Studio can paint this: small-0: too large for its memory")
        assert "small-1: too large for its memory" in failed["error"]
        for studio in studios:
            assert studio.client.get("/v1/status").json()["queued"] == 0
    finally:
        for studio in studios:
            studio.stop()


def test_the_pool_setting_takes_urls_tokens_and_names_once_each():
    pool: list[Any] = [{"url": "http://gpu-1:8100/", "token": "t1"}, {"url": "https://gpu-2"}]
    settings = GallerySettings(studios=pool)
    assert [(s.url, s.label(), s.token_value()) for s in settings.studio_pool()] == [
        ("http://gpu-1:8100", "gpu-1:8100", "t1"),
        ("https://gpu-2", "gpu-2", None),
    ]
    assert [s.url for s in GallerySettings(studio_url="http://one:8100").studio_pool()] == ["http://one:8100"]
    bad: list[Any]
    for bad in (
        [{"url": "http://a:1"}, {"url": "http://a:1/"}],
        [{"url": "http://a:1", "name": "x"}, {"url": "http://b:1", "name": "x"}],
        [{"url": "ftp://a"}],
    ):
        try:
            GallerySettings(studios=bad)  # type: ignore[arg-type]  # what an environment variable would hold
        except ValueError as exc:
            assert "studios" in str(exc) or "url" in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")
