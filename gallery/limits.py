"""How much one browser, one address and everyone together may ask Gallery to paint at once.

    limits = Limits(catalog, per_client=3, total=100, per_minute=20)
    limits.admit(owner, address)     # TooManyRequests (429, Retry-After) or nothing

Three caps, because each alone can be got round: a browser's unfinished paintings (by its owner
cookie, which a script can drop), an address's creations in the last minute (held in memory; the
address is never stored), and the unfinished paintings of everyone (the queue a Studio works through).
"""

from __future__ import annotations

import collections
import math
import threading
import time

from httpapi.errors import TooManyRequests
from painting.catalog import Catalog
from painting.records import UNFINISHED

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000  # addresses remembered at once; the oldest go first


class Limits:
    """The three caps of one Gallery; see the module docstring."""

    def __init__(self, catalog: Catalog, *, per_client: int, total: int, per_minute: int) -> None:
        self.catalog = catalog
        self.per_client = per_client
        self.total = total
        self.per_minute = per_minute
        self._recent: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def admit(self, owner: str | None, address: str | None) -> None:
        """Count one new painting against the caps, or raise TooManyRequests saying which and when to retry."""
        unfinished = self.catalog.count(statuses=UNFINISHED)
        if unfinished >= self.total:
            raise TooManyRequests(
                f"Gallery has {unfinished} paintings waiting or under way, as many as it takes: try again in a minute.",
                retry_after_s=60,
            )
        if owner is not None:
            mine = self.catalog.count(statuses=UNFINISHED, owner=owner)
            if mine >= self.per_client:
                raise TooManyRequests(
                    f"You have {mine} painting{'' if mine == 1 else 's'} waiting or under way, the most at once: "
                    "wait for one to finish, or cancel one.",
                    retry_after_s=30,
                )
        if address is not None:
            self._count_creation(address)

    def _count_creation(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = self._recent.pop(address, None) or collections.deque()
            while recent and now - recent[0] > WINDOW_S:
                recent.popleft()
            if len(recent) >= self.per_minute:
                self._recent[address] = recent
                wait = math.ceil(WINDOW_S - (now - recent[0]))
                raise TooManyRequests(
                    f"{len(recent)} paintings from here in the last minute is the most: try again in {wait} s.",
                    retry_after_s=max(1, wait),
                )
            recent.append(now)
            self._recent[address] = recent  # the most recent address last
            while len(self._recent) > MAX_ADDRESSES:
                self._recent.popitem(last=False)


__all__ = ["Limits"]
