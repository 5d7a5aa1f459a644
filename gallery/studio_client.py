"""Gallery's client for Studio's HTTP API (v1), over httpx.

    client = StudioClient("http://127.0.0.1:8100", token="...")
    job = await client.submit(painting_id, content_png, [style_png], params_dict)
    async for event in client.events(job["id"], last_event_id="3"): ...
    await client.cancel(job["id"])      # stop it;  await client.forget(job["id"]): and delete it there
    await client.change_weights(job["id"], {"style_weight": 100.0})   # from its next iteration on
    await client.estimate({"params": {...}, "width": 1200, "height": 900, "styles": 1})
    await client.status()               # its capacity and load, for the pool (gallery.pool)

    training = await client.submit_training(training_id, params_dict, {"photos": zip_file, ...})
    async for event in client.training_events(training["id"], last_event_id="3"): ...
    await client.cancel_training(training["id"]);  await client.forget_training(training["id"])

Every failure is one of `gallery.errors`: StudioUnavailable (connect/read errors, timeouts, 5xx:
retry later), StudioRejected (4xx: do not retry), StudioJobGone (404 for a job or a training).
`transport` lets tests drive the client with `httpx.MockTransport`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import httpx

from gallery.errors import StudioImageGone, StudioJobGone, StudioRejected, StudioUnauthorized, StudioUnavailable

SUBMIT_TRAINING_TIMEOUT_S = 600.0  # the longest Studio may take to check a training's images and answer


@dataclass(frozen=True)
class StudioEvent:
    """One Server-Sent Event of a Studio job or training: `progress`, `done`, `failed` or `cancelled`."""

    id: str
    type: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type != "progress"


class StudioClient:
    """Calls Studio's /v1 API with a bearer token and timeouts; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 60.0,
        stream_timeout_s: float = 60.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._stream_timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s, read=stream_timeout_s)
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, transport=transport, timeout=self._timeout)
        self._styles: tuple[dict[str, Any], bytes | None] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, url: str, *, what: str = "painting", **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:  # connect/read errors, resets, every timeout
            raise StudioUnavailable(f"Studio did not answer: {type(exc).__name__}") from exc
        _raise_for_status(response, url, what)
        return response

    async def submit(
        self,
        key: str,
        content: bytes | None,
        styles: list[bytes],
        params: dict[str, Any],
        *,
        resume: tuple[bytes, int] | None = None,
    ) -> dict[str, Any]:
        """Send a painting to Studio as a job (Idempotency-Key: `key`, the painting's id and how
        often it moved); Studio's job JSON.

        `content` is None for a latent generator model's painting (it has no photo). `resume` (an
        image and the iteration it shows) starts a Gatys job there rather than from the beginning."""
        files = [("content", ("content", content, "application/octet-stream"))] if content is not None else []
        files += [("style", (f"style-{i}", s, "application/octet-stream")) for i, s in enumerate(styles)]
        data = {"params": json.dumps(params)}
        if resume is not None:
            files.append(("init", ("init", resume[0], "application/octet-stream")))
            data["start_iteration"] = str(resume[1])
        response = await self._call("POST", "/v1/jobs", files=files, data=data, headers={"Idempotency-Key": key})
        return _json(response)

    async def status(self) -> dict[str, Any]:
        """Studio's capacity and load (GET /v1/status): workers, running, queued, ready, engines, models,
        largest_size, iteration_seconds_512, memory_budget_bytes."""
        return _json(await self._call("GET", "/v1/status", timeout=httpx.Timeout(5.0)))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop a job (it stays, cancelled); Studio's job JSON."""
        return _json(await self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    async def change_weights(self, job_id: str, weights: dict[str, float]) -> dict[str, Any]:
        """New loss weights for a job (some of content_weight, style_weight, tv_weight); Studio's job JSON.
        A job that ended is StudioRejected (409)."""
        return _json(await self._call("POST", f"/v1/jobs/{job_id}/weights", json=weights))

    async def forget(self, job_id: str) -> None:
        """Stop a job if it runs and delete it and its images at Studio (the painting was deleted)."""
        await self._call("DELETE", f"/v1/jobs/{job_id}")

    async def estimate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Studio's estimate of a painting ({params, width, height, styles}): seconds (None until its
        worker has timed itself), peak_bytes, budget_bytes, fits, largest_size, passes."""
        return _json(await self._call("POST", "/v1/estimate", json=body, timeout=httpx.Timeout(5.0)))

    async def models(self) -> dict[str, Any]:
        """The generator models Studio serves: {"known": bool, "models": [{name, kind, ok, problem, ...}]}."""
        return _json(await self._call("GET", "/v1/models", timeout=httpx.Timeout(5.0)))

    async def builtin_styles(self) -> tuple[dict[str, Any], bytes | None]:
        """The fast engine's built-in styles ({"known", "count", "tile"}) and their PNG strip, kept once
        fetched (a worker renders the same strip every time)."""
        if self._styles is None:
            described = _json(await self._call("GET", "/v1/styles", timeout=httpx.Timeout(5.0)))
            if not described.get("known"):
                return described, None
            sheet = (await self._call("GET", "/v1/styles/sheet.png")).content
            self._styles = (described, sheet)
        return self._styles

    async def image(self, image_id: str) -> bytes:
        return (await self._call("GET", f"/v1/images/{image_id}")).content

    async def submit_training(
        self, key: str, params: dict[str, Any], collections: Mapping[str, IO[bytes]]
    ) -> dict[str, Any]:
        """Send a training to Studio (POST /v1/trainings, Idempotency-Key: `key`): its params (with
        `kind`) and each collection as ONE archive part named after it (`photos`, `paintings`,
        `images`), read from the open file given; Studio's training JSON."""
        files = [(name, (f"{name}.zip", archive, "application/zip")) for name, archive in collections.items()]
        data = {"params": json.dumps(params)}
        # Studio reads and checks every image before it answers: give it longer than one call.
        waiting = httpx.Timeout(
            max(self._timeout.read or 0.0, SUBMIT_TRAINING_TIMEOUT_S), connect=self._timeout.connect
        )
        response = await self._call(
            "POST",
            "/v1/trainings",
            files=files,
            data=data,
            headers={"Idempotency-Key": key},
            timeout=waiting,
            what="training",
        )
        return _json(response)

    async def training(self, training_id: str) -> dict[str, Any]:
        """Studio's training JSON (GET /v1/trainings/{id})."""
        return _json(await self._call("GET", f"/v1/trainings/{training_id}", what="training"))

    async def cancel_training(self, training_id: str) -> dict[str, Any]:
        """Stop a training (it keeps its last checkpoint there); Studio's training JSON."""
        return _json(await self._call("POST", f"/v1/trainings/{training_id}/cancel", what="training"))

    async def forget_training(self, training_id: str) -> None:
        """Stop a training if it runs and delete it at Studio (a model it finished stays in the models folder)."""
        await self._call("DELETE", f"/v1/trainings/{training_id}", what="training")

    async def training_events(
        self, training_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[StudioEvent]:
        """The training's events after `last_event_id`, live, until a terminal one or the stream ends."""
        async for event in self._events(f"/v1/trainings/{training_id}/events", last_event_id):
            yield event

    async def events(self, job_id: str, *, last_event_id: str | None = None) -> AsyncIterator[StudioEvent]:
        """The job's events after `last_event_id`, live, until a terminal one or the stream ends."""
        async for event in self._events(f"/v1/jobs/{job_id}/events", last_event_id):
            yield event

    async def _events(self, url: str, last_event_id: str | None) -> AsyncIterator[StudioEvent]:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            async with self._http.stream("GET", url, headers=headers, timeout=self._stream_timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                _raise_for_status(response, url, "training" if url.startswith("/v1/trainings/") else "painting")
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        continue  # keep-alive comment
                    if line == "":
                        if "data" in fields:
                            event = StudioEvent(
                                fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                            )
                            yield event
                            if event.terminal:
                                return
                        fields = {}
                        continue
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except httpx.TransportError as exc:
            raise StudioUnavailable(f"Studio's event stream broke: {type(exc).__name__}") from exc
        except json.JSONDecodeError as exc:
            raise StudioUnavailable("Studio sent an event that is not JSON") from exc


def _raise_for_status(response: httpx.Response, url: str, what: str = "painting") -> None:
    """Nothing for a success; else the error of `gallery.errors` its status means (`what` Studio was
    asked about, "painting" or "training", names it in a refusal)."""
    status = response.status_code
    if status < 400:
        return
    if status >= 500 or status in (408, 429):
        raise StudioUnavailable(f"Studio answered {status} to {url}")
    detail = _detail(response)
    if status in (401, 403):
        raise StudioUnauthorized(
            f"Studio refused Gallery's token ({status}): GALLERY_STUDIO_TOKEN must equal Studio's STUDIO_TOKEN"
        )
    if status == 404 and "/v1/jobs/" in url:
        raise StudioJobGone(f"Studio has no such job: {detail}")
    if status == 404 and url == "/v1/trainings":
        raise StudioRejected("This Studio cannot train: it has no /v1/trainings (an older version)")
    if status == 404 and "/v1/trainings/" in url:
        raise StudioJobGone(f"Studio has no such training: {detail}")
    if status == 404 and "/v1/images/" in url:
        raise StudioImageGone(f"Studio no longer has that image: {detail}")
    raise StudioRejected(f"Studio refused the {what} ({status}): {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except (ValueError, AttributeError):
        return response.text[:300]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError as exc:
        raise StudioUnavailable("Studio answered with something that is not JSON") from exc


__all__ = ["StudioClient", "StudioEvent"]
