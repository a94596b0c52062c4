"""Throttling of failed token checks per client (token guessing): a token bucket per client address.

Each client may fail `max_failures` token checks in a burst; the bucket refills at `max_failures` per
`window_s` seconds. A client with an empty bucket is answered 429 (with ``Retry-After``) before its token
is looked at, so a guess made while blocked tells nothing. Successful checks cost nothing and are never
delayed. Memory is bounded: at most `max_clients` buckets are kept (full buckets are dropped first, then
the least recently failed); IPv6 clients are grouped by /64, the block one host usually owns.

Behind a reverse proxy every request comes from the proxy's address unless the service is told to trust its
``X-Forwarded-For`` (``adrcs serve --trusted-proxy``); requests without a client address share one bucket.
"""
from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from functools import lru_cache

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_CLIENTS = 10_000


@lru_cache(maxsize=4096)
def client_key(host: str | None) -> str:
    """The bucket of a client address: IPv4 as is, IPv6 by /64 network, anything else (a unix socket's
    name, a test client) as is; no address at all is ``"unknown"``."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:200]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedAuthLimiter:
    """Token buckets of failed authentication attempts, keyed by client address."""

    def __init__(self, max_failures: int = DEFAULT_MAX_FAILURES, window_s: float = DEFAULT_WINDOW_S,
                 max_clients: int = DEFAULT_MAX_CLIENTS, clock=time.monotonic) -> None:
        self.capacity = float(max(1, int(max_failures)))
        self.rate = self.capacity / max(float(window_s), 1e-6)  # tokens per second
        self.max_clients = max(1, int(max_clients))
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at); LRU order

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float | None:
        hit = self._buckets.get(key)
        if hit is None:
            return None
        tokens, at = hit
        return min(self.capacity, tokens + (now - at) * self.rate)

    def retry_after(self, host: str | None) -> int:
        """Seconds until this client may try a token again; 0 when it may now (the common, cheap case)."""
        if not self._buckets:
            return 0
        now = self.clock()
        key = client_key(host)
        level = self._level(key, now)
        if level is None or level >= 1.0:
            if level is not None and level >= self.capacity:
                del self._buckets[key]  # refilled: the same as no entry (keeps the common case a no-op)
            return 0
        return max(1, math.ceil((1.0 - level) / self.rate))

    def failed(self, host: str | None) -> None:
        """Record one failed token check of this client."""
        key, now = client_key(host), self.clock()
        level = self._level(key, now)
        # may go below 0 (down to -capacity): failures that were checked concurrently, after all passed
        # `retry_after`, still count and lengthen the wait
        self._buckets[key] = (max(-self.capacity, (self.capacity if level is None else level) - 1.0), now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_clients:
            self._evict(now)

    def _evict(self, now: float) -> None:
        for key in [k for k in self._buckets if (self._level(k, now) or 0.0) >= self.capacity]:
            del self._buckets[key]  # refilled: the same as no entry
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)  # least recently failed
