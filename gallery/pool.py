"""The Studios Gallery sends paintings to, what each can do and how busy it is, and which one a
painting goes to.

    pool = StudioPool(settings.studio_pool(), poll_s=5, grace_s=300)
    await pool.start()                         # reads each Studio's GET /v1/status every poll_s
    member = await pool.choose(record, width, height)   # the Studio that starts it soonest
    pool.member(record.remote_url)             # the Studio a painting's job is on (None: not in the pool)
    pool.gone(member)                          # unreachable for longer than grace_s: move its paintings
    await pool.aclose()

Each Studio (`Member`) is known by its base URL, which a painting's record keeps (`remote_url`) with
its job id. A Studio is *up* after a status read or a call that worked, *down* from the first failure
until the next success; down for longer than `grace_s` it is *gone*, and the dispatcher moves its
unfinished paintings to another (they resume there from their latest preview).

Choosing (`choose`), with several Studios: among those up, drop the ones that cannot paint it (its
engine is not ready there, its model is not there, or Studio's own estimate says it does not fit
its memory), then take the one that would start it soonest: jobs ahead of it there (running, queued,
and those Gallery sent since the last read) beyond its free workers, each counted at this painting's
estimated seconds there; then the sooner finish, then the lighter load. A Studio whose workers are
not ready is chosen only when none is. None up but some never read yet: the first of those (it
queues the job). None can paint it: `NoStudioCan`, with each Studio's reason. None answers:
`StudioUnavailable`, with each one's. With one Studio there is nothing to choose: it gets every
painting, as before pools, and refuses what it cannot paint itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gallery.errors import StudioRejected, StudioUnavailable
from gallery.settings import StudioEntry
from gallery.studio_client import StudioClient
from painting.params import Params

log = logging.getLogger("gallery.pool")


class NoStudioCan(StudioRejected):
    """No Studio of the pool can paint this painting (each one's reason in the message)."""


@dataclass(eq=False)
class Member:
    """One Studio of the pool: its client and what Gallery last learnt of it."""

    entry: StudioEntry
    client: StudioClient
    status: dict[str, Any] | None = None  # its last GET /v1/status
    down_since: float | None = None  # monotonic time of the first failure since the last success
    problem: str | None = None  # why it is down
    sent: int = 0  # jobs Gallery sent it since its last status read
    clock: Callable[[], float] = field(default=time.monotonic)

    @property
    def url(self) -> str:
        return self.entry.url

    @property
    def name(self) -> str:
        return self.entry.label()

    @property
    def up(self) -> bool:
        return self.down_since is None and self.status is not None

    def reached(self, status: dict[str, Any] | None = None) -> None:
        """A call worked (with a status read: what it said)."""
        if status is not None:
            self.status = status
            self.sent = 0
        if self.down_since is not None:
            log.info("Studio %s answers again", self.name)
        self.down_since, self.problem = None, None

    def unreachable(self, reason: str) -> None:
        if self.down_since is None:
            log.warning("Studio %s is unreachable: %s", self.name, reason)
            self.down_since = self.clock()
        self.problem = reason

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def workers(self) -> int:
        """Workers ready to paint (at least one: a Studio starting its workers queues jobs)."""
        status = self.status or {}
        ready = status.get("workers_ready")
        if not isinstance(ready, int):
            ready = sum(1 for w in status.get("workers", []) if isinstance(w, dict) and w.get("ready"))
        return max(1, ready)

    def ahead(self) -> int:
        """Jobs there before a new one: running, queued, and sent since the last read."""
        status = self.status or {}
        running, queued = status.get("running", 0), status.get("queued", 0)
        return (running if isinstance(running, int) else 0) + (queued if isinstance(queued, int) else 0) + self.sent

    def ready(self) -> bool:
        return bool((self.status or {}).get("ready"))

    def cannot_paint(self, params: Params) -> str | None:
        """Why this Studio cannot paint it, from its status alone (its engine, its models); None: it may."""
        status = self.status or {}
        engines = status.get("engines")
        if isinstance(engines, dict) and engines and engines.get(params.engine) != "ready":
            return str(engines.get(params.engine) or f"it has no {params.engine} engine")
        models = status.get("models")
        if params.engine == "model" and isinstance(models, list) and params.model not in models:
            return f"it has no model {params.model!r}"
        return None


class StudioPool:
    """The Studios of `GallerySettings.studio_pool()`; see the module docstring."""

    def __init__(
        self,
        entries: Sequence[StudioEntry],
        *,
        poll_s: float = 5.0,
        grace_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 60.0,
        stream_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not entries:
            raise ValueError("a pool needs at least one Studio")
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.members = [
            Member(
                entry,
                StudioClient(
                    entry.url,
                    token=entry.token_value(),
                    transport=transport,
                    connect_timeout_s=connect_timeout_s,
                    timeout_s=timeout_s,
                    stream_timeout_s=stream_timeout_s,
                ),
                clock=clock,
            )
            for entry in entries
        ]
        self._by_url = {m.url: m for m in self.members}
        self._poller: asyncio.Task[None] | None = None
        self._turn = 0  # rotates ties, so equal Studios share the work
        self.on_poll: Callable[[], None] = lambda: None  # told after each round of reads (metrics)

    @property
    def single(self) -> bool:
        return len(self.members) == 1

    def member(self, url: str | None) -> Member | None:
        """The Studio at `url`; None when no Studio of the pool is there (it left the pool). A record
        without a URL (made before pools) is the first Studio's, and with one Studio every job is its
        own: its address may have changed since (`deep-painting serve` picks a free port each start)."""
        if url is None or self.single:
            return self.members[0]
        return self._by_url.get(url.rstrip("/"))

    def front(self) -> StudioClient:
        """The client to ask what any Studio of the pool can tell (models, styles, estimates): the
        first that is up, else the first."""
        return next((m.client for m in self.members if m.up), self.members[0].client)

    def gone(self, member: Member | None) -> bool:
        """Whether a painting on `member` should move: it left the pool, or has been unreachable for
        longer than the grace period; never when there is no other Studio to go to."""
        if self.single:
            return False
        return member is None or member.down_for() > self.grace_s

    async def start(self) -> None:
        await self.poll()
        self._poller = asyncio.create_task(self._poll_forever(), name="studio-pool-poll")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for m in self.members:
            await m.client.aclose()

    async def poll(self) -> None:
        """Read every Studio's capacity and load once (at the same time)."""
        await asyncio.gather(*(self._read(m) for m in self.members))
        self.on_poll()

    async def _read(self, member: Member) -> None:
        try:
            member.reached(await member.client.status())
        except StudioUnavailable as exc:
            member.unreachable(str(exc))
        except StudioRejected as exc:  # a wrong token, or a Studio too old to have /v1/status
            member.unreachable(str(exc))

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception:  # a bug must not stop the reads for good
                log.exception("reading the Studios' status")

    async def choose(self, params: Params, width: int | None, height: int | None, styles: int) -> Member:
        """The Studio to send a painting to; see the module docstring. Raises NoStudioCan and
        StudioUnavailable."""
        if self.single:
            return self.members[0]
        up = [m for m in self.members if m.up]
        if not up:
            unread = [m for m in self.members if m.status is None and m.down_since is None]
            if unread:
                return unread[0]
            raise StudioUnavailable(
                "No Studio answers: " + "; ".join(f"{m.name}: {m.problem or 'not read yet'}" for m in self.members)
            )
        reasons: dict[str, str] = {}
        able: list[tuple[Member, float | None]] = []
        body = {"params": params.model_dump(mode="json"), "width": width, "height": height, "styles": styles}
        for m in up:
            problem = m.cannot_paint(params)
            if problem is None:
                try:
                    estimate = await m.client.estimate(body)
                except StudioUnavailable as exc:
                    m.unreachable(str(exc))
                    continue
                except StudioRejected as exc:
                    problem = str(exc)
                else:
                    m.reached()
                    if estimate.get("fits") is False:
                        largest = estimate.get("largest_size")
                        problem = "too large for its memory" + (
                            f": the largest size that fits is {largest}" if largest else ""
                        )
                    else:
                        seconds = estimate.get("seconds")
                        able.append((m, float(seconds) if isinstance(seconds, int | float) else None))
                        continue
            reasons[m.name] = problem
        if not able:
            if reasons:
                raise NoStudioCan("No Studio can paint this: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))
            raise StudioUnavailable("No Studio answers: " + "; ".join(f"{m.name}: {m.problem}" for m in self.members))
        self._turn += 1
        order = {m: (i - self._turn) % len(self.members) for i, m in enumerate(self.members)}

        def key(pair: tuple[Member, float | None]) -> tuple[bool, float, float, float, int]:
            m, seconds = pair
            each = seconds if seconds is not None else 1.0
            workers, ahead = m.workers(), m.ahead()
            start_s = max(0, ahead - workers + 1) / workers * each
            return (not m.ready(), start_s, each, ahead / workers, order[m])

        chosen = min(able, key=key)[0]
        chosen.sent += 1
        return chosen


__all__ = ["Member", "NoStudioCan", "StudioPool"]
