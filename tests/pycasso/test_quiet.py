"""TensorFlow's native start-up lines are held back while the model loads, and shown when it fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

NATIVE = "I0000 00:00:1795392055.088626    2040 port.cc:153] oneDNN custom operations are on."
SCRIPT = """
import logging, os, sys
from pycasso.quiet import native_startup_noise_held
logging.basicConfig(level=logging.DEBUG, format="log %(message)s", stream=sys.stdout)
with native_startup_noise_held():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, ({native!r} + "\\n").encode())
    print("a python warning", file=sys.stderr)
    if {fail}:
        raise RuntimeError("the model did not load")
print("after", file=sys.stderr)
"""


def run(fail: bool) -> subprocess.CompletedProcess:
    code = SCRIPT.format(native=NATIVE, fail=fail)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_native_lines_go_to_the_debug_log_when_the_load_succeeds():
    done = run(fail=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "a python warning\nafter\n"
    assert f"log tensorflow: {NATIVE}" in done.stdout


def test_native_lines_are_shown_when_the_load_fails():
    done = run(fail=True)
    assert done.returncode == 1
    assert "a python warning" in done.stderr and NATIVE in done.stderr and "absl::InitializeLog" in done.stderr
    assert "RuntimeError: the model did not load" in done.stderr


@pytest.mark.slow
def test_the_worker_starts_without_tensorflow_chatter():
    done = subprocess.run([sys.executable, "-m", "pycasso"], input=b"", capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert b"oneDNN" not in done.stderr and b"I0000" not in done.stderr and b"cuInit" not in done.stderr
    assert done.stdout.startswith(b"\x00")  # the ready frame (a 4-byte length) still reaches stdout
