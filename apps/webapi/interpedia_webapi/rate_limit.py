"""A per-caller token bucket for heavy requests (inference, steering, search), in process.

One process's memory is enough for a single web server; several replicas would
each allow the configured rate, which is acceptable for a self-hosted tool.
"""

import time
from dataclasses import dataclass

from interpedia_core.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, per_minute: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_callers = max_callers
        self._buckets: dict[str, _Bucket] = {}

    def take(self, caller: str, cost: float = 1.0) -> None:
        """Spend `cost` tokens of `caller`'s bucket or raise `RateLimited`."""
        now = time.monotonic()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= self.max_callers:
                self._forget_full(now)
            bucket = self._buckets[caller] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < cost:
            wait = (cost - bucket.tokens) / self.rate if self.rate > 0 else 60
            raise RateLimited(f"too many requests; try again in {wait:.0f} s")
        bucket.tokens -= cost

    def _forget_full(self, now: float) -> None:
        """Drop callers whose buckets have refilled: they carry no state worth keeping."""
        for caller, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[caller]
