"""The shape of every background loop, and a byte-rate limiter they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

__all__ = ["RateLimiter", "Worker"]

log = logging.getLogger("cairn.repair")

BURST_S: Final = 0.5  # a limiter lets this many seconds' worth of bytes through at once
MIN_BURST_BYTES: Final = 1024 * 1024


class RateLimiter:
    """A token bucket in bytes per second; 0 means unlimited. The rate can change while
    workers wait on it."""

    def __init__(self, rate_bytes_s: float) -> None:
        self.rate_bytes_s = max(0.0, rate_bytes_s)
        self._tokens = 0.0
        self._at = time.monotonic()

    def set_rate(self, rate_bytes_s: float) -> None:
        self.rate_bytes_s = max(0.0, rate_bytes_s)

    async def acquire(self, n: int) -> None:
        """Wait until ``n`` bytes may go."""
        while self.rate_bytes_s > 0:
            now = time.monotonic()
            burst = max(self.rate_bytes_s * BURST_S, MIN_BURST_BYTES)
            self._tokens = min(burst, self._tokens + (now - self._at) * self.rate_bytes_s)
            self._at = now
            if self._tokens >= min(n, burst):
                self._tokens -= n
                return
            need = min(n, burst) - self._tokens
            await asyncio.sleep(min(need / self.rate_bytes_s, 1.0))


class Worker:
    """A named background loop: ``run_once()`` does one bounded unit of work and says
    whether there was any; ``run()`` repeats it until stopped, resting when idle.
    ``kick()`` wakes it to start a pass now. Tests call ``run_once()`` until idle."""

    name = "worker"

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._kick = asyncio.Event()
        self.pass_requested = False
        self.errors = 0
        self.last_error = ""

    async def run_once(self) -> bool:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {"errors": self.errors, "last_error": self.last_error}

    def kick(self) -> None:
        """Start a pass now (an operator's `cairn admin scrub|repair`)."""
        self.pass_requested = True
        self._kick.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; the status says what failed
                log.exception("%s round failed", self.name)
                self.errors += 1
                self.last_error = repr(exc)
                busy = False
            if busy:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                waiters = {asyncio.ensure_future(stop.wait()),
                           asyncio.ensure_future(self._kick.wait())}
                _done, pending = await asyncio.wait(waiters, timeout=self.idle_s,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
            self._kick.clear()
