"""Small helpers the test folders share: generated images, loopback ports, polling, and processes.

Importable as `support` from any test module or conftest (pytest puts `tests/` on sys.path for the
top-level conftest). Fixtures stay in each folder's conftest, so the folders do not depend on each other.
"""

from __future__ import annotations

import io
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A solid-colour PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it returns something truthy (returned), or fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {timeout} s")


def alive(pid: int) -> bool:
    """Whether a process is running (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first (Pycasso workers run in their own session, so a
    process group would miss them)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def phone_photo(width: int, height: int, *, orientation: int = 6) -> bytes:
    """A photo as many phones write it: an MPO (a JPEG with a second frame after the first) whose
    EXIF orientation tag says how to turn it (6: rotate 90° clockwise to display, so it shows
    `height` wide and `width` tall). The left half is red, the right half blue, as stored."""
    first = Image.new("RGB", (width, height), (220, 30, 30))
    first.paste((30, 30, 220), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    first.save(
        buf,
        format="MPO",
        save_all=True,
        append_images=[Image.new("RGB", (width, height), (9, 9, 9))],
        exif=exif.tobytes(),
    )
    return buf.getvalue()


def refused(response: Any, status: int, *words: str) -> str:
    """The refusal's one sentence, after checking its status, its shape and that it names `words`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    for word in words:
        assert word in body["detail"], body
    return body["detail"]


def terminate(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM a child and wait for it (SIGKILL after `timeout`); its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
