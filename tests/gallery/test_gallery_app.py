"""Gallery without Studio: the page at /, the command line, and what Gallery's process imports."""

from __future__ import annotations

import subprocess
import sys

from deep_painting.cli import SUBCOMMANDS
from gallery.settings import GallerySettings

NO_STUDIO = "http://127.0.0.1:9"  # nothing listens there: the dispatcher just waits


def test_the_page_is_served_at_the_root_when_the_folder_exists(gallery_factory, tmp_path):
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>Deep Painting</title>")
    (page / "app.js").write_text("export {};")
    gallery = gallery_factory(NO_STUDIO, frontend_dir=page)
    assert "Deep Painting" in gallery.client.get("/").text
    assert gallery.client.get("/app.js").status_code == 200
    assert gallery.client.get("/api/params/schema").status_code == 200  # the API wins over the mount


def test_without_the_folder_the_api_still_works(gallery_factory):
    gallery = gallery_factory(NO_STUDIO)
    assert gallery.client.get("/").status_code == 404
    assert gallery.client.get("/api/paintings").json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_ready_means_the_catalog_answers_whether_or_not_studio_does(gallery_factory):
    gallery = gallery_factory(NO_STUDIO)
    response = gallery.client.get("/health/ready")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_the_page_defaults_to_the_frontend_folder_beside_the_code_wherever_gallery_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository
    monkeypatch.delenv("GALLERY_FRONTEND_DIR", raising=False)
    folder = GallerySettings().frontend_dir
    assert folder.is_absolute() and (folder / "index.html").is_file()


def test_gallery_never_imports_studio_pycasso_or_tensorflow():
    code = (
        "import sys, gallery.app, gallery.cli; from gallery.app import create_app; create_app();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'studio', 'pycasso', 'tensorflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_gallery_subcommand_is_listed_and_has_help():
    assert SUBCOMMANDS["gallery"][0] == "gallery.cli:main"
    out = subprocess.run(
        [sys.executable, "-m", "deep_painting", "gallery", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--port" in out.stdout
