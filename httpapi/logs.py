"""How both services log: plain lines for a person, or JSON lines for a log pipeline, and every line
said while working on a painting carries its id (Gallery), its Studio job's id, and (Gallery, with a
pool of Studios) the name of the Studio the job is on.

    configure_logging("json", level="INFO", service="studio")    # from the CLI, once
    with about(painting=painting_id, job=job_id): log.info(...)  # lines inside carry both ids
    about_job(job_id, studio="gpu-1")                             # set for the rest of this task

The ids live in context variables: each asyncio task (one per painting in Gallery's dispatcher) has
its own, so concurrent paintings never mix. A filter copies them onto each record as it is made;
the JSON formatter writes them out (`"painting"`, `"job"`, `"studio"`), the text formatter appends them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

_PAINTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("painting", default=None)
_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("job", default=None)
_STUDIO: contextvars.ContextVar[str | None] = contextvars.ContextVar("studio", default=None)
_IDS = ("painting", "job", "studio")


@contextlib.contextmanager
def about(*, painting: str | None = None, job: str | None = None) -> Iterator[None]:
    """Lines logged inside carry these ids (those not given keep what the context had)."""
    tokens = []
    if painting is not None:
        tokens.append((_PAINTING, _PAINTING.set(painting)))
    if job is not None:
        tokens.append((_JOB, _JOB.set(job)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def about_painting(painting: str) -> None:
    """For the rest of the current task, lines carry this painting id."""
    _PAINTING.set(painting)


def about_job(job: str | None, *, studio: str | None = None) -> None:
    """For the rest of the current task, lines carry this Studio job id (and the Studio's name)."""
    _JOB.set(job)
    _STUDIO.set(studio)


class ContextIds(logging.Filter):
    """Copies the context's painting and job ids and Studio name onto each record (as `painting`,
    `job`, `studio`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.painting = _PAINTING.get()
        record.job = _JOB.get()
        record.studio = _STUDIO.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the ids when set."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _IDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`service LEVEL message [painting=... job=...]`, as the services always printed, plus the ids."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{key}={value}" for key in _IDS if (value := getattr(record, key, None))]
        return f"{text} [{' '.join(ids)}]" if ids else text


def configure_logging(fmt: LogFormat, *, level: str, service: str) -> None:
    """Send every logger's lines (uvicorn's too, given `log_config=None`) to stderr in `fmt`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextIds())
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


__all__ = [
    "ContextIds",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "about",
    "about_job",
    "about_painting",
    "configure_logging",
]
