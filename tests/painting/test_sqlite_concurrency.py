"""Several processes writing one SQLite file: no "database is locked", no lost rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from painting.catalog import Catalog
from painting.db import sqlite_url

PROCESSES = 8
INSERTS = 200

CHILD = textwrap.dedent(
    """
    import hashlib, os, sys, time
    from pathlib import Path
    from painting.catalog import Catalog
    from painting.records import Status
    from painting.progress import ProgressPoint
    from painting.params import Params

    url, go, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    while not go.exists():  # start together, so migrations and inserts really collide
        time.sleep(0.005)
    catalog = Catalog(url, scope="test")  # every process migrates the same empty file at once
    image = hashlib.sha256(str(os.getpid()).encode()).hexdigest()
    for i in range(n):
        rec = catalog.create(params=Params(), content_image=image, style_images=[image])
        if i % 10 == 0:  # some conditional updates and history rows in the mix
            catalog.transition(rec.id, Status.RUNNING, from_={Status.QUEUED})
            catalog.record_progress(rec.id, ProgressPoint(1, 1, 1.0, 1.0, 1.0, 1.0, 0.1))
    catalog.close()
    """
)


@pytest.mark.slow
def test_eight_processes_insert_into_one_sqlite_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "catalog.sqlite3")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(go), str(INSERTS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    time.sleep(0.5)  # let them import
    go.touch()
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or err:
            failures.append(err.decode(errors="replace")[-2000:])
    assert not failures, "\n---\n".join(failures)
    with Catalog(url, scope="test") as catalog:
        assert catalog.count() == PROCESSES * INSERTS
        assert len(catalog.newest(limit=500)) == 500
        assert len(catalog.unfinished()) == PROCESSES * INSERTS
