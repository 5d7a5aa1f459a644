"""TensorFlow's start-up chatter kept off the terminal, without losing what matters.

Importing TensorFlow and building the model print native log lines straight to file descriptor 2
("oneDNN custom operations are on", "Could not find cuda drivers", "failed call to cuInit" on a
machine without a GPU...). `TF_CPP_MIN_LOG_LEVEL` does not stop the ones that absl writes before
its logging is initialised, and to someone starting the service they read like failures.

`native_startup_noise_held()` points fd 2 at a pipe while the model loads. A reader thread passes every
other line (Python's logging, tracebacks) through at once and holds the native ones: when the load
succeeds they go to the debug log, when it fails they are written out after all, since then they
may explain why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

# absl / TSL native log lines: "I0000 00:00:1795391517.823810   29576 port.cc:153] ...", and absl's notice.
NATIVE_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] )"
)

log = logging.getLogger("pycasso")


@contextlib.contextmanager
def native_startup_noise_held() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    held: list[bytes] = []
    passed_through = os.dup(saved)  # the reader's own copy: `saved` may be closed before it starts

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(passed_through, "wb", buffering=0) as out:
            for line in pipe:
                if NATIVE_LINE.match(line):
                    held.append(line)
                else:
                    out.write(line)

    reader = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    reader.start()
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the reader sees its end
        os.close(saved)
        reader.join(5)
        if failed:
            for line in held:
                sys.stderr.write(line.decode(errors="replace"))
            sys.stderr.flush()
        else:
            for line in held:
                log.debug("tensorflow: %s", line.decode(errors="replace").rstrip())


__all__ = ["native_startup_noise_held"]
