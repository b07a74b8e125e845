"""The scrubber: read every record of every disk at a set rate, verify it, and replace a
bad copy with a verified one from another replica. A bad copy is never served (the
engine flags it) and never used as a source (a source's bytes are verified in transit).
A record that is bad on every replica is counted as lost and reported, never "repaired"
with wrong bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from cairn._retry import Backoff
from cairn.node.coordinator import Coordinator
from cairn.node.storage import format as fmt
from cairn.node.storage.scrub import verify_entry

from .worker import RateLimiter, Worker

__all__ = ["Scrubber"]

log = logging.getLogger("cairn.repair")

BATCH: Final = 64
LOST_KEPT: Final = 100
# A damaged copy whose repair was deferred (a replica did not answer) is tried again
# after 1 s, doubling up to 30 s, RETRY_ATTEMPTS times in all (about 10 minutes) before
# it is counted lost.
RETRY_BACKOFF: Final = Backoff(base_s=1.0, max_s=30.0, jitter="none")
RETRY_ATTEMPTS: Final = 25


class Scrubber(Worker):
    name = "scrubber"

    def __init__(self, coordinator: Coordinator, limiter: RateLimiter, *, interval_s: float
                 ) -> None:
        super().__init__(idle_s=min(interval_s, 1.0))
        self.coordinator = coordinator
        self.limiter = limiter
        self.interval_s = interval_s
        self.passes = 0
        self.last_pass_ms = 0
        self.checked = 0
        self.repaired = 0
        self.lost = 0
        self.lost_keys: list[str] = []
        self._cursor: dict[int, bytes] | None = None  # disk index -> last key checked
        self._pass_checked = 0
        self._pass_total = 1
        self._next_pass_at = time.monotonic() + interval_s
        self.deferred: dict[bytes, tuple[int, float]] = {}  # okey -> (attempts, due at)

    def status(self) -> dict[str, Any]:
        progress = 0.0 if self._cursor is None else min(1.0,
                                                        self._pass_checked / self._pass_total)
        return {**super().status(), "passes": self.passes, "last_pass_ms": self.last_pass_ms,
                "progress": progress, "checked": self.checked, "repaired": self.repaired,
                "lost": self.lost, "lost_keys": list(self.lost_keys),
                "deferred": len(self.deferred)}

    async def run_once(self) -> bool:
        """Verify one batch of records (starting a pass when one is due)."""
        engine = self.coordinator.engine.engine
        if await self._retry_one():
            return True
        if self._cursor is None:
            if not self.pass_requested and time.monotonic() < self._next_pass_at:
                return False
            self.pass_requested = False
            self._cursor = {i: b"" for i in range(len(engine.disks))}
            self._pass_checked = 0
            self._pass_total = max(1, sum(d.stats.objects for d in engine.disks))
        for index, after in list(self._cursor.items()):
            disk = engine.disks[index]
            batch = await asyncio.to_thread(self._batch, disk, after)
            if not batch:
                del self._cursor[index]
                continue
            for okey, entry in batch:
                await self.limiter.acquire(max(entry.record_len if entry else 0, 1))
                reason = await asyncio.to_thread(verify_entry, disk, okey)
                self.checked += 1
                self._pass_checked += 1
                if reason is not None:
                    await self._repair(okey, reason)
            self._cursor[index] = batch[-1][0]
            return True
        self._cursor = None
        self.passes += 1
        self.last_pass_ms = time.time_ns() // 1_000_000
        self._next_pass_at = time.monotonic() + self.interval_s
        return False

    @staticmethod
    def _batch(disk: Any, after: bytes) -> list[tuple[bytes, fmt.IndexEntry | None]]:
        """The next index entries; a corrupt one comes as None (``verify_entry`` finds
        it corrupt and it is repaired like a damaged record)."""
        if disk.state == "failed":
            return []
        out: list[tuple[bytes, fmt.IndexEntry | None]] = []
        for okey, entry in disk.scan(after, b"", after=bool(after)):
            out.append((okey, entry))
            if len(out) >= BATCH:
                break
        return out

    async def _retry_one(self) -> bool:
        """Try again the deferred repair that is due first, if any is due."""
        now = time.monotonic()
        due = [(at, okey) for okey, (_n, at) in self.deferred.items() if at <= now]
        if not due:
            return False
        _at, okey = min(due)
        await self._repair(okey, "its repair was deferred")
        return True

    async def _repair(self, okey: bytes, reason: str) -> None:
        bucket_b, key = fmt.split_object_key(okey)
        bucket = bucket_b.decode("ascii")
        log.warning("scrub found %s/%r damaged: %s", bucket, key, reason)
        outcome = await self.coordinator.repair_copy(bucket, key)
        attempts = self.deferred.pop(okey, (0, 0.0))[0] + 1
        if outcome == "deferred" and attempts < RETRY_ATTEMPTS:
            wait = RETRY_BACKOFF.ceiling_s(attempts)
            self.deferred[okey] = (attempts, time.monotonic() + wait)
            log.info("repair of %s/%r deferred (attempt %d): again in %.0f s", bucket, key,
                     attempts, wait)
            return
        if outcome == "repaired":
            self.repaired += 1
        elif outcome in ("lost", "deferred"):
            self.lost += 1
            if len(self.lost_keys) < LOST_KEPT:
                self.lost_keys.append(f"{bucket}/{key.decode('utf-8', 'replace')}")
            log.error("%s/%r is damaged on every replica that answered: lost", bucket, key)
