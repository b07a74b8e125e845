"""``Repair``: the node's repair workers, their shared rate limit, and their status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from cairn.node.coordinator import Coordinator

from .antientropy import AntiEntropy, PartitionResult
from .scrubber import Scrubber
from .worker import RateLimiter

__all__ = ["Repair", "RepairConfig"]

log = logging.getLogger("cairn.repair")


@dataclass(frozen=True, slots=True)
class RepairConfig:
    """Attributes:
    repair_rate_bytes_s: bytes/s that anti-entropy and rebuild may copy (0 = unlimited;
        default 64 MiB/s). Changeable at run time (``cairn admin repair --rate``).
    scrub_rate_bytes_s: bytes/s the scrubber reads (0 = unlimited; default 32 MiB/s).
    scrub_interval_s: a scrub pass starts this long after the last one ended (default
        one day); ``cairn admin scrub`` starts one now.
    antientropy_interval_s: likewise for anti-entropy (default 10 minutes).
    disk_check_interval_s: how often disks are checked for having vanished or come
        back empty (default 2 s).
    leaves: leaves of each partition's hash tree (default 64).
    """

    repair_rate_bytes_s: float = 64 * 1024 * 1024
    scrub_rate_bytes_s: float = 32 * 1024 * 1024
    scrub_interval_s: float = 24 * 3600.0
    antientropy_interval_s: float = 600.0
    disk_check_interval_s: float = 2.0
    leaves: int = 64
    timeout_s: float = 5.0


class Repair:
    """Runs the scrubber and anti-entropy as tasks; the admin calls reach them here."""

    def __init__(self, coordinator: Coordinator, config: RepairConfig) -> None:
        self.coordinator = coordinator
        self.config = config
        self.copy_limiter = RateLimiter(config.repair_rate_bytes_s)
        self.scrub_limiter = RateLimiter(config.scrub_rate_bytes_s)
        self.antientropy = AntiEntropy(coordinator, self.copy_limiter,
                                       interval_s=config.antientropy_interval_s,
                                       leaves=config.leaves, timeout_s=config.timeout_s)
        self.scrubber = Scrubber(coordinator, self.scrub_limiter,
                                 interval_s=config.scrub_interval_s)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.ensure_future(self.scrubber.run(self._stop)),
                       asyncio.ensure_future(self._disk_loop())]
        if self.coordinator.peers is not None:
            self._tasks.append(asyncio.ensure_future(self.antientropy.run(self._stop)))

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout_s)
        self._tasks = []

    async def _disk_loop(self) -> None:
        engine = self.coordinator.engine.engine
        while not self._stop.is_set():
            try:
                back = await asyncio.to_thread(engine.check_disks)
            except Exception:
                log.exception("disk check failed")
                back = []
            hints = self.coordinator.hints
            if hints is not None and PurePath(hints.path).parent in map(PurePath, back):
                # The hint store lives on that disk: its open files went with the old one.
                await asyncio.to_thread(hints.reopen)
            if back and self.coordinator.peers is not None:
                log.warning("rebuilding %s from the other replicas", ", ".join(back))
                self.antientropy.kick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.disk_check_interval_s)

    # ------------------------------------------------------------------ admin

    def scrub_now(self) -> None:
        self.scrubber.kick()

    async def repair_now(self, partition: int | None, wait: bool) -> list[PartitionResult]:
        """Anti-entropy now: one partition (levelled before answering), or a whole pass
        (with ``wait``, levelled before answering; else started in the background)."""
        if partition is not None:
            return [await self.antientropy.sync_partition(partition)]
        if not wait:
            self.antientropy.kick()
            return []
        await self.antientropy.survey()
        results = []
        for p in list(self.antientropy.below):
            results.append(await self.antientropy.sync_partition(p))
        self.antientropy._todo = []
        return results

    def set_rate(self, rate_bytes_s: float) -> None:
        self.copy_limiter.set_rate(rate_bytes_s)
        log.info("repair rate set to %s bytes/s", rate_bytes_s or "unlimited")

    def status(self) -> dict[str, Any]:
        ae = self.antientropy.status()
        sc = self.scrubber.status()
        return {
            "partitions_held": ae["partitions_held"],
            "partitions_below_redundancy": ae["partitions_below_redundancy"],
            "bytes_to_copy": ae["bytes_to_copy"],
            "eta_s": ae["eta_s"],
            "rate_bytes_s": self.copy_limiter.rate_bytes_s,
            "antientropy_passes": ae["passes"],
            "antientropy_last_pass_ms": ae["last_pass_ms"],
            "objects_pulled": ae["objects_pulled"],
            "objects_pushed": ae["objects_pushed"],
            "bytes_copied": ae["bytes_copied"],
            "scrub_progress": sc["progress"],
            "scrub_passes": sc["passes"],
            "scrub_last_pass_ms": sc["last_pass_ms"],
            "scrub_checked": sc["checked"],
            "scrub_repaired": sc["repaired"],
            "scrub_lost": sc["lost"],
            "scrub_deferred": sc["deferred"],
            "partitions_rebuilding": len(self.coordinator.engine.engine.rebuild),
        }
