"""How the pool picks a Studio for a painting, and when a Studio counts as gone: each Studio's HTTP API
is a mock transport answering by host (the pool's real HTTP is tested with Studio processes in
test_gallery_pool.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gallery.errors import StudioUnavailable
from gallery.pool import NoStudioCan, StudioPool
from gallery.settings import StudioEntry
from painting.params import Params


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_of(studios: dict[str, dict[str, Any] | None], *, clock: Clock | None = None) -> StudioPool:
    """A pool of Studios named by host: each one's status (None: it does not answer), and its
    estimate under "estimate" (default: fits, 2 s)."""

    async def answer(request: httpx.Request) -> httpx.Response:
        said = studios[request.url.host]
        if said is None:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/v1/status":
            return httpx.Response(200, json={k: v for k, v in said.items() if k != "estimate"})
        if request.url.path == "/v1/estimate":
            return httpx.Response(200, json=said.get("estimate", {"seconds": 2.0, "fits": True}))
        return httpx.Response(404, json={"detail": "no"})

    entries = [StudioEntry(url=f"http://{host}", name=host) for host in studios]
    return StudioPool(entries, transport=httpx.MockTransport(answer), grace_s=60, clock=clock or Clock())


def status(*, running: int = 0, queued: int = 0, workers: int = 1, ready: bool = True, **more: Any) -> dict[str, Any]:
    return {"ready": ready, "workers_ready": workers, "running": running, "queued": queued, "engines": {}, **more}


def choose(pool: StudioPool, params: Params | None = None) -> str:
    async def run() -> str:
        await pool.poll()
        try:
            return (await pool.choose(params or Params(), 64, 48, 1)).name
        finally:
            for member in pool.members:
                await member.client.aclose()

    return asyncio.run(run())


def test_a_free_worker_wins_over_a_queue():
    pool = pool_of({"busy": status(running=2, queued=3, workers=2), "free": status(running=1, workers=2)})
    assert choose(pool) == "free"


def test_the_sooner_start_counts_the_painting_at_each_studios_speed():
    # Both busy: three ahead of one worker at 10 s a painting, or one ahead of one worker at 50 s.
    fast = status(running=1, queued=2, estimate={"seconds": 10.0, "fits": True})
    slow = status(running=1, estimate={"seconds": 50.0, "fits": True})
    assert choose(pool_of({"fast": fast, "slow": slow})) == "fast"  # starts in 30 s, not 50 s


def test_sends_since_the_last_read_count_so_a_burst_spreads():
    async def burst() -> list[str]:
        pool = pool_of({"a": status(workers=2), "b": status(workers=2), "c": status(workers=2)})
        await pool.poll()
        names = [(await pool.choose(Params(), 64, 48, 1)).name for _ in range(6)]
        for member in pool.members:
            await member.client.aclose()
        return names

    assert sorted(asyncio.run(burst())) == ["a", "a", "b", "b", "c", "c"]


def test_a_studio_that_cannot_paint_it_is_passed_over_and_none_able_says_why_for_each():
    no_fast = status(engines={"gatys": "ready", "fast": "onnxruntime is not installed"})
    small = status(engines={"gatys": "ready", "fast": "ready"}, estimate={"fits": False, "largest_size": 300})
    able = status(engines={"gatys": "ready", "fast": "ready"}, running=4)
    assert choose(pool_of({"no-fast": no_fast, "small": small, "able": able}), Params(engine="fast")) == "able"
    with pytest.raises(NoStudioCan) as refused:
        choose(pool_of({"no-fast": no_fast, "small": small}), Params(engine="fast"))
    assert str(refused.value) == (
        "No Studio can paint this: no-fast: onnxruntime is not installed; "
        "small: too large for its memory: the largest size that fits is 300"
    )
    model = Params(engine="model", model="zebra")
    with pytest.raises(NoStudioCan, match="it has no model 'zebra'"):
        choose(pool_of({"a": status(models=["horse"]), "b": status(models=[])}), model)


def test_workers_not_ready_are_a_last_resort_and_nobody_answering_waits():
    assert choose(pool_of({"starting": status(ready=False), "ready": status(running=9)})) == "ready"
    assert choose(pool_of({"starting": status(ready=False), "gone": None})) == "starting"
    with pytest.raises(StudioUnavailable, match="No Studio answers: a: Studio did not answer: ConnectError"):
        choose(pool_of({"a": None, "b": None}))


def test_a_studio_is_gone_after_the_grace_period_unless_it_is_the_only_one():
    clock = Clock()
    studios: dict[str, dict[str, Any] | None] = {"a": status(), "b": None}
    pool = pool_of(studios, clock=clock)

    async def read() -> None:
        await pool.poll()

    asyncio.run(read())
    a, b = pool.members
    assert a.up and not b.up and not pool.gone(b)
    clock.now += 61
    assert pool.gone(b) and not pool.gone(a)
    assert pool.gone(None)  # a Studio that left the pool's settings
    studios["b"] = status()
    asyncio.run(read())
    assert b.up and not pool.gone(b)  # it came back: nothing moves
    lone = pool_of({"only": None}, clock=clock)
    asyncio.run(lone.poll())
    clock.now += 3600
    assert not lone.gone(lone.members[0])  # nowhere else to go: its paintings wait for it
    assert lone.member(None) is lone.members[0] and lone.member("http://elsewhere") is lone.members[0]
    assert pool.member("http://elsewhere") is None and pool.member("http://b/") is b
