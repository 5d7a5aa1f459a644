"""Contract fuzzing: schemathesis against Gallery's and Studio's OpenAPI documents, in-process over ASGI.

Each app is built by its factory over a temporary data folder (a real SQLite file) and runs its
lifespan; Studio's workers are the fake worker (tests/studio/fake_worker.py: the real protocol, no
TensorFlow), and Gallery's Studio URL is a closed port (paintings wait). For every operation of each
document, a fixed number of requests the document allows and as many it forbids (a fixed seed: the
same requests every run) must each get a response that is not a server error (>= 500), whose status
code the document lists, and whose content type and body match what it gives for that status. An
exception the app raises fails the test too (in-process, Starlette re-raises what it answered 500 for).

Random bytes are seldom an image, so half of the paintings and jobs sent carry real small images of
random shapes (some turned by an EXIF orientation tag): the created (201/202) answers and the shape
refusals are checked as well; and an operation on one painting, job or image is also sent requests that
name a real one. Bounded: EXAMPLES per operation and pass, and a time budget per app.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gallery.app import create_app as create_gallery
from gallery.settings import GallerySettings
from studio.app import create_app as create_studio
from studio.settings import StudioSettings

from studio_process import FAKE_WORKER
from support import phone_photo, png, wait_for

TOKEN = "fuzz-token-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12  # per operation and mode (allowed, forbidden)
BUDGET_S = 30.0  # per app; a run takes a few seconds on 2 cores
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    phases=[Phase.generate],  # no shrinking: a failure reports the request as it was sent
    suppress_health_check=list(HealthCheck),
)

_sides = st.sampled_from((1, 3, 16, 64, 200))  # squares, strips and everything between
_images = st.one_of(
    st.builds(png, _sides, _sides),
    st.builds(phone_photo, _sides, _sides, orientation=st.integers(1, 8)),
)


def with_real_images(context: Any, body: Any) -> st.SearchStrategy:
    """A multipart painting body as generated, or (as often) the same with real images in it.

    With real images it becomes a real job, so its run is cut to a few iterations: the fake worker
    (20 ms an iteration) is then soon free for the job whose events another operation reads.
    """
    if not (isinstance(body, dict) and "content" in body and isinstance(body.get("style"), list)):
        return st.just(body)
    styles = max(1, len(body["style"]))
    params = body.get("params", {})
    iterations = params.get("iterations") if isinstance(params, dict) else None
    if type(iterations) is int:  # a generated value of another type stays, to be refused
        params = {**params, "iterations": min(iterations, 3)}
    real = st.builds(
        lambda content, style: {**body, "content": content, "style": [style] * styles, "params": params},
        _images,
        _images,
    )
    return st.one_of(st.just(body), real)


@pytest.fixture(scope="module")
def gallery_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("fuzz-gallery")
    app = create_gallery(
        GallerySettings(
            data_dir=folder / "data",
            studio_url="http://127.0.0.1:9",  # nothing listens: a painting waits
            frontend_dir=folder / "no-frontend",
            max_body_bytes=2_000_000,
            # Every request the fuzzer sends counts against the caps on paintings at once: lift them,
            # so the operations that need a painting keep getting one (429 is documented all the same).
            max_unfinished_per_client=10_000,
            max_unfinished=10_000,
            max_creations_per_minute=100_000,
            max_unfinished_trainings=10_000,
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.hook("flatmap_body")(with_real_images)
    return schema


@pytest.fixture(scope="module")
def studio_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("fuzz-studio")
    app = create_studio(
        StudioSettings(
            data_dir=folder / "data",
            token=SecretStr(TOKEN),
            worker_command=[sys.executable, FAKE_WORKER],
            keepalive_s=0.2,
            shutdown_timeout_s=1.0,  # a long fake job need not finish before the lifespan ends
            max_body_bytes=2_000_000,
            models_dir=folder / "models",  # trainings put their models here
            allow_cpu_training=True,  # the fake worker is on the CPU
        )
    )
    # Studio serves its document behind the token, like the rest of /v1.
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app, headers={"Authorization": f"Bearer {TOKEN}"})
    schema.hook("flatmap_body")(with_real_images)
    return schema


def fuzz(schema: Any, *, ready: str, make: Callable[[Any], dict[str, str]], **headers: str) -> int:
    """Send every operation of `schema` its allowed and forbidden requests, and an operation with ids in its
    path also allowed requests naming real things (`make(client)` creates one and gives its ids by
    parameter name); how many operations ran."""
    deadline = time.monotonic() + BUDGET_S
    operations = 0
    with asgi.get_client(schema.app) as client:  # the app's lifespan runs until the test ends
        wait_for(lambda: client.get(ready, timeout=5).status_code == 200, 30, f"{ready} answering 200")
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            passes: list[tuple[GenerationMode, dict[str, str]]] = [
                (GenerationMode.POSITIVE, {}),
                (GenerationMode.NEGATIVE, {}),
            ]
            names = [p.name for p in operation.path_parameters]
            if names:
                made = make(client)  # a fresh one: an earlier pass may have deleted the last
                passes.append((GenerationMode.POSITIVE, {name: made[name] for name in names}))
            for mode, path in passes:

                @FUZZ
                @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
                def send(case: Any) -> None:
                    try:
                        case.call_and_validate(session=client, checks=CHECKS, headers=headers, timeout=10)
                    except Exception as exc:  # the app raised (a check failing raises a FailureGroup, not this)
                        raise AssertionError(
                            f"{case.operation.label} raised {type(exc).__name__}: {exc}\n"
                            f"Reproduce with: {case.as_curl_command(headers=headers)}"
                        ) from exc

                try:
                    send()
                except Unsatisfiable:  # nothing the document forbids can be sent here (a free string in the path)
                    assert mode is GenerationMode.NEGATIVE, operation.label
            assert time.monotonic() < deadline, f"fuzzing ran past its {BUDGET_S} s budget at {operation.label}"
    return operations


def _painting_form() -> tuple[list[tuple[str, tuple[str | None, bytes, str]]], bytes]:
    content = png(64, 48)
    files: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("content", ("c.png", content, "image/png")),
        ("style", ("s.png", png(8, 8, (20, 40, 220)), "image/png")),
        ("params", (None, b'{"size": 32, "iterations": 2, "preview_every": 1}', "application/json")),
    ]
    return files, content


def make_painting(client: Any) -> dict[str, str]:
    """A painting (its id and its photo's) and a training (its id), for Gallery's operations on one."""
    files, _ = _painting_form()
    created = client.post("/api/paintings", files=files, timeout=10)
    assert created.status_code == 201, created.text
    painting = created.json()
    collections = [
        (name, (f"{name}-{i}.png", png(8 + i, 8), "image/png")) for name in ("photos", "paintings") for i in range(4)
    ]
    params = (None, b'{"kind": "cyclegan", "steps": 2, "image_size": 16, "filters": 4}', "application/json")
    trained = client.post("/api/trainings", files=[*collections, ("params", params)], timeout=10)
    assert trained.status_code == 201, trained.text
    return {"painting_id": painting["id"], "image_id": painting["content_image"], "training_id": trained.json()["id"]}


def make_job(client: Any) -> dict[str, str]:
    """A job, and a training (a tiny one: the fake worker trains it in a few steps)."""
    files, content = _painting_form()
    created = client.post("/v1/jobs", files=files, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert created.status_code == 202, created.text
    collections = [
        (name, (f"{i}.png", png(16, 16, (i * 40, 90, 200)), "image/png"))
        for name in ("photos", "paintings")
        for i in range(4)
    ]
    params = b'{"kind": "cyclegan", "steps": 2, "image_size": 16, "filters": 4}'
    training = client.post(
        "/v1/trainings",
        files=[*collections, ("params", (None, params, "application/json"))],
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert training.status_code == 202, training.text
    made = {"job_id": created.json()["id"], "training_id": training.json()["id"]}
    return {**made, "image_id": hashlib.sha256(content).hexdigest()}


def test_gallery_answers_every_request_as_its_document_says(gallery_api: Any) -> None:
    # 13 (+ weights, estimate), + the trainings': create, list, get, cancel, delete, schema
    assert fuzz(gallery_api, ready="/health/ready", make=make_painting) == 19


def test_studio_answers_every_request_as_its_document_says(studio_api: Any) -> None:
    # 12, + POST /v1/jobs/{id}/weights, + POST /v1/estimate, + the 6 of /v1/trainings
    assert fuzz(studio_api, ready="/health/ready", make=make_job, Authorization=f"Bearer {TOKEN}") == 20
