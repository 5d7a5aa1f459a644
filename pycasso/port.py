"""The port protocol between Studio and a Pycasso worker, over the worker's stdin/stdout.

Framing is Erlang's `{packet, 4}`: a 4-byte big-endian length, then that many bytes. A message
is one frame of UTF-8 JSON holding a `type`, followed by one frame per entry of its `attachments`
list (raw PNG bytes, never base64). The `attachments` entries name each blob's role:

    Studio -> Pycasso   paint {job, params, attachments: [content, style, ..., init?]}
                        cancel {job}          ping {n}          (stdin closed: exit cleanly)
                        weights {job, weights: {content_weight?, style_weight?, tv_weight?}}
                        calibrate {}      rescan {}   (read the models folder anew; answered by `models`)
                        train {job, kind, params, data, checkpoints, name, sample_every, checkpoint_every}
    Pycasso -> Studio   ready {version, backend, device, weights, memory: {base_bytes, device_bytes}}
                        progress {job, iterations, <a painting.progress point>, attachments?: [preview]}
                        done {job, stats, attachments: [result]}
                        error {job, code, message}     cancelled {job}     pong {n}
                        calibrated {calibration: {...} | null, problem: str | null, interrupted: bool}
                        training {job, step, steps, losses: {network: loss}, seconds_per_step,
                                  checkpoint: step | null, attachments?: [sample]}
                        models {models: [...], engines: {...}, trained: bool}   (the models folder changed)

An optional `init` attachment on `paint` (with `start_iteration`) resumes a run from an image.
`weights` changes a Gatys job's loss weights: a queued job starts with them, a running one takes them
from its next iteration on, and the first `progress` under them carries `weights` (all three).

`train` is a training job (issue 15): a CycleGAN or DCGAN trained on the images in the folder `data`
(`photos/` and `paintings/`, or `images/`), checkpointed into the folder `checkpoints` every
`checkpoint_every` steps (a `train` whose folder holds a checkpoint resumes from it), a `training`
message after each step that is due (at most every half second, and every sample), a `sample` image
every `sample_every` steps; at the end the generator goes into the worker's models folder as `name`,
`models` lists the folder anew, and `done` carries the last sample. A cancel keeps the checkpoint.
Folders, not attachments: a training set is thousands of images, and Studio and its workers share a
disk.

`calibrate` asks the worker to time itself (`pycasso.calibration`); it waits behind queued jobs and a
`paint` that arrives while it runs stops it (`calibrated` then says why, with no calibration).

This module must stay importable without TensorFlow: Studio uses it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import IO, Any

from painting.progress import ProgressPoint, json_safe

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 128 * 1024 * 1024  # a frame larger than this is refused (and skipped)
MAX_ATTACHMENTS = 16
ROLES = frozenset({"content", "style", "init", "preview", "result", "builtin", "sample"})
TYPES = frozenset(
    {"paint", "cancel", "weights", "ping", "ready", "progress", "done", "error", "cancelled", "pong"}
    | {"calibrate", "calibrated", "train", "training", "models", "rescan"}
)


class ProtocolError(Exception):
    """A frame or message that breaks the protocol. `fatal` means the stream is out of sync."""

    def __init__(self, message: str, *, fatal: bool = False, job: str | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.job = job


@dataclass
class Message:
    """One protocol message: its JSON header (`type` and fields) and its attachments, in order."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)  # (role, bytes)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def blobs(self, role: str) -> list[bytes]:
        return [data for name, data in self.attachments if name == role]

    @property
    def job(self) -> str | None:
        job = self.fields.get("job")
        return job if isinstance(job, str) else None


# --- framing ----------------------------------------------------------------------------------


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's payload, or None at a clean end of stream (between frames).

    A frame over MAX_FRAME_BYTES is read past and discarded, so the stream stays in sync, and
    reported as a non-fatal ProtocolError; a stream that ends inside a frame is fatal.
    """
    header = _read_exact(stream, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise ProtocolError("stream ended inside a frame header", fatal=True)
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        remaining = length
        while remaining:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                raise ProtocolError("stream ended inside an oversized frame", fatal=True)
            remaining -= len(chunk)
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    payload = _read_exact(stream, length)
    if len(payload) < length:
        raise ProtocolError("stream ended inside a frame", fatal=True)
    return payload


# --- messages ---------------------------------------------------------------------------------


def encode(message: Message) -> list[bytes]:
    """The frames of a message: its JSON header, then its attachments."""
    header = {"type": message.type, **json_safe(message.fields)}
    if message.attachments:
        header["attachments"] = [role for role, _ in message.attachments]
    return [json.dumps(header, separators=(",", ":"), allow_nan=False).encode()] + [
        data for _, data in message.attachments
    ]


def write_message(stream: IO[bytes], message: Message) -> None:
    """Write all frames of `message` and flush. Callers sharing a stream must hold a lock."""
    for frame in encode(message):
        write_frame(stream, frame)
    stream.flush()


def read_message(stream: IO[bytes]) -> Message | None:
    """The next message, or None at a clean end of stream.

    Raises ProtocolError for a malformed message. Unless the error is `fatal`, the stream is still
    in sync: a bad header's attachments are read past whenever their count is known, and the error
    names the message's job when it has one.
    """
    payload = read_frame(stream)
    if payload is None:
        return None
    try:
        header = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"a message header is not UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a message header must be a JSON object")
    job = header.get("job") if isinstance(header.get("job"), str) else None
    roles = header.pop("attachments", [])
    if not isinstance(roles, list):
        raise ProtocolError("`attachments` must be a list of roles", fatal=True, job=job)
    attachments: list[tuple[str, bytes]] = []
    problem: str | None = None
    for role in roles:
        try:
            data = read_frame(stream)
        except ProtocolError as exc:
            if exc.fatal:
                raise ProtocolError(str(exc), fatal=True, job=job) from None
            problem = problem or f"attachment {len(attachments) + 1}: {exc}"  # read past it, stay in sync
            data = b""
        if data is None:
            raise ProtocolError("stream ended before a message's attachments", fatal=True, job=job)
        attachments.append((role, data))
    if problem:
        raise ProtocolError(problem, job=job)
    if len(roles) > MAX_ATTACHMENTS:
        raise ProtocolError(f"a message may carry at most {MAX_ATTACHMENTS} attachments", job=job)
    kind = header.pop("type", None)
    if not isinstance(kind, str) or kind not in TYPES:
        raise ProtocolError(f"unknown message type {kind!r:.60}", job=job)
    bad_roles = [role for role in roles if not isinstance(role, str) or role not in ROLES]
    if bad_roles:
        raise ProtocolError(f"unknown attachment role {bad_roles[0]!r:.60}", job=job)
    return Message(kind, header, attachments)


# --- constructors for each message, so both sides spell them the same way ---------------------


def paint(
    job: str,
    params: dict[str, Any],
    content: bytes | None,
    styles: list[bytes],
    *,
    init: bytes | None = None,
    start_iteration: int = 0,
    memory_budget: int | None = None,
) -> Message:
    """A job for the worker. `content` is None only for a latent generator model (engine `model`).
    `memory_budget`: bytes of working memory one pass may use; a larger pass is painted in tiles."""
    attachments = ([("content", content)] if content is not None else []) + [("style", s) for s in styles]
    fields: dict[str, Any] = {"job": job, "params": params}
    if memory_budget is not None:
        fields["memory_budget"] = int(memory_budget)
    if init is not None:
        attachments.append(("init", init))
        fields["start_iteration"] = start_iteration
    return Message("paint", fields, attachments)


def train(
    job: str,
    kind: str,
    params: dict[str, Any],
    *,
    data: str,
    checkpoints: str,
    name: str,
    sample_every: int,
    checkpoint_every: int,
) -> Message:
    """A training job: `params` is the trainer's (`painting.training.TrainingParams.to_engine()`),
    `data` and `checkpoints` folders on the disk Studio and the worker share, `name` the model's."""
    fields = {
        "job": job,
        "kind": kind,
        "params": params,
        "data": data,
        "checkpoints": checkpoints,
        "name": name,
        "sample_every": sample_every,
        "checkpoint_every": checkpoint_every,
    }
    return Message("train", fields)


def training(
    job: str,
    step: int,
    steps: int,
    losses: dict[str, float],
    seconds_per_step: float,
    *,
    checkpoint: int | None = None,
    sample: bytes | None = None,
) -> Message:
    """How a training job stands after `step` steps of `steps`: each network's loss, the seconds a
    step took lately, the step of its latest checkpoint, and a sample image when one was due."""
    fields = {
        "job": job,
        "step": step,
        "steps": steps,
        "losses": json_safe(dict(losses)),
        "seconds_per_step": seconds_per_step,
        "checkpoint": checkpoint,
    }
    return Message("training", fields, [("sample", sample)] if sample is not None else [])


def models(listed: list[dict[str, Any]], engines: dict[str, str], *, trained: bool = False) -> Message:
    """The worker's generator models anew, and its engines' state; `trained`: its own training just
    added one (Studio then asks its other workers to `rescan`)."""
    return Message("models", {"models": listed, "engines": engines, "trained": trained})


def rescan() -> Message:
    """Read the models folder anew (another worker put a trained model there)."""
    return Message("rescan", {})


def cancel(job: str) -> Message:
    return Message("cancel", {"job": job})


def weights(job: str, values: dict[str, float]) -> Message:
    """New loss weights for a job (some of content_weight, style_weight, tv_weight)."""
    return Message("weights", {"job": job, "weights": dict(values)})


def ping(n: int) -> Message:
    return Message("ping", {"n": n})


def pong(n: Any) -> Message:
    return Message("pong", {"n": n})


def ready(
    version: str, backend: str, device: str, weights: str, *, builtin_sheet: bytes | None = None, **more: Any
) -> Message:
    """What a worker paints with: `engines` maps each engine to "ready" or why it is missing; `models`
    lists the generator models it serves (each `ModelInfo.to_json()`); `builtin_sheet`, a PNG strip
    of the fast engine's built-in styles (attachment "builtin")."""
    fields = {"version": version, "backend": backend, "device": device, "weights": weights, **more}
    return Message("ready", fields, [("builtin", builtin_sheet)] if builtin_sheet is not None else [])


def progress(job: str, iterations: int, point: ProgressPoint, preview: bytes | None = None) -> Message:
    fields = {"job": job, "iterations": iterations, **point.to_json()}
    return Message("progress", fields, [("preview", preview)] if preview is not None else [])


def done(job: str, stats: dict[str, Any], result: bytes) -> Message:
    return Message("done", {"job": job, "stats": stats}, [("result", result)])


def error(job: str | None, code: str, message: str) -> Message:
    return Message("error", {"job": job, "code": code, "message": message})


def cancelled(job: str) -> Message:
    return Message("cancelled", {"job": job})


def calibrate() -> Message:
    return Message("calibrate", {})


def calibrated(calibration: dict[str, Any] | None, problem: str | None = None, *, interrupted: bool = False) -> Message:
    """The worker's timing (`painting.estimate.Calibration.to_json()`), or None and why not
    (`interrupted`: a job came first, ask again later)."""
    return Message("calibrated", {"calibration": calibration, "problem": problem, "interrupted": interrupted})


__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_FRAME_BYTES",
    "Message",
    "ProtocolError",
    "calibrate",
    "calibrated",
    "cancel",
    "cancelled",
    "done",
    "encode",
    "error",
    "models",
    "paint",
    "ping",
    "pong",
    "progress",
    "read_frame",
    "read_message",
    "ready",
    "rescan",
    "train",
    "training",
    "write_frame",
    "weights",
    "write_message",
]
