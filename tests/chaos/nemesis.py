"""The nemesis: faults injected into a running cluster, one node at a time.

Each fault is injected on one node, held for a while, then healed; the next fault starts
only after the previous one was healed, so at most one node is ever down or damaged.
A run may ask for several nemeses at once (``--concurrent-faults``): each then damages a
node no other one holds, so that many faults overlap. Of the faults that destroy stored
copies (``DESTROYS``: wiped, replaced or vanished disks, flipped, truncated or deleted
bytes) only one is in force at a time, from its injection until the node reports its
damage repaired (no partition left to refill, no scrub repair deferred): with N = 3
and W = 2 a write survives the loss of one copy, not of two (docs/consistency.md).
Faults that only stop a node for a while (kill, pause, partitions, full or read-only
disks, power loss of unsynced bytes) overlap with anything.
Every choice (which fault, which node, how long, which bytes) comes from one seeded
``random.Random``, so a seed replays the same schedule; the instants at which faults
land relative to client calls depend on timing and are not replayed exactly.

Faults (``KINDS``):

- ``kill``: SIGKILL the node, restart it on the same data and port.
- ``pause``: SIGSTOP the node (it still completes TCP handshakes), then SIGCONT.
- ``skew``: restart the node (SIGTERM, a clean shutdown) with its clock minutes ahead or
  behind (``CAIRN_CLOCK_OFFSET_MS``); healing restarts it with the true clock.
- ``flip``: XOR random bytes at random offsets of the node's segment files while it
  runs; healing starts a scrub pass on it and waits for it to end.
- ``wipe``: delete everything in the node's data directory while it runs (an operator's
  ``rm -rf``); healing waits until the node took the empty disk back (anti-entropy then
  refills it; the runner's repair phase waits for that).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from tests.support.cluster import Cluster

from .history import History

KINDS = ("kill", "pause", "skew", "flip", "wipe")  # the node faults of this module

# A fault: ``inject(nemesis, node, record) -> heal``. ``inject`` does the damage (and
# may add details to ``record``, which goes into the history); it returns the function
# that heals it. Modules beside this one add kinds with ``register``.
# ``unavailable()`` says why a kind cannot run on this machine (no root, no ip netns),
# or None; the runner then leaves the kind out and says so.
# A setup, ``setup(cluster, cleanup)``, runs before the cluster starts (mount a
# filesystem per disk, put nodes in network namespaces) and pushes its undoing onto the
# ``contextlib.ExitStack`` it is given, which the runner closes after the nodes stopped.
Injector = Callable[["Nemesis", int, dict[str, Any]], Callable[[], None]]
Setup = Callable[[Cluster, contextlib.ExitStack], None]
INJECTORS: dict[str, Injector] = {}
UNAVAILABLE: dict[str, Callable[[], str | None]] = {}
SETUPS: list[Setup] = []


def register(kind: str, inject: Injector,
             unavailable: Callable[[], str | None] = lambda: None) -> None:
    if kind in INJECTORS or kind in KINDS:
        raise ValueError(f"fault kind {kind!r} is registered twice")
    INJECTORS[kind] = inject
    UNAVAILABLE[kind] = unavailable


def register_setup(setup: Setup) -> None:
    SETUPS.append(setup)


def available_kinds() -> tuple[list[str], dict[str, str]]:
    """The kinds this machine can inject, and why the others cannot run."""
    skipped = {k: why for k, f in UNAVAILABLE.items() if (why := f())}
    return [*KINDS, *(k for k in INJECTORS if k not in skipped)], skipped
# Fault kinds that destroy stored copies: at most one in force at a time (see above).
DESTROYS = frozenset({"flip", "wipe", "lmdb-flip", "truncate", "replace", "vanish"})
REPAIRED_TIMEOUT_S = 60.0  # a destroying fault waits this long for its repair, at most
HOLD_S = (2.0, 6.0)  # how long a fault is held
GAP_S = (1.0, 3.0)  # quiet time between a heal and the next fault
SKEW_MS = (60_000, 600_000)  # 1 to 10 minutes, ahead or behind
FLIPS = (1, 8)  # bytes flipped per flip fault
HEAL_TIMEOUT_S = 60.0
WIPE_LEFTOVER_S = 20.0  # a wiped disk not taken back by then is looked at again
_BUSY_LOCK = threading.Lock()


def remove_contents(directory: Path) -> int:
    """Delete everything in ``directory`` (an operator's ``rm -rf dir/*``); returns how
    many entries were removed. The node may write meanwhile."""
    removed = 0
    for entry in list(directory.iterdir()):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = HEAL_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Nemesis(threading.Thread):
    """Injects faults until ``stop`` is set, then heals the one in force and returns."""

    def __init__(self, cluster: Cluster, history: History, rng: random.Random,
                 stop: threading.Event, kinds: list[str], busy: set[int] | None = None,
                 name: str = "nemesis", destroying: set[int] | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.stop_event = stop
        self.kinds = kinds  # the order to cycle through (shuffled by the runner's seed)
        self.faults: list[dict[str, Any]] = []  # every fault injected, as recorded
        self.crashed: BaseException | None = None
        self.paused: set[int] = set()  # nodes SIGSTOPped right now (for cleanup)
        # Nodes some nemesis is damaging right now, shared by the nemeses of a run with
        # several faults at a time: each picks a node no other one holds.
        self.busy = busy if busy is not None else set()
        # The node whose copies a destroying fault damaged and are not repaired yet
        # (shared like ``busy``): no other destroying fault starts meanwhile.
        self.destroying = destroying if destroying is not None else set()

    def run(self) -> None:
        try:
            i = 0
            while not self.stop_event.wait(self.rng.uniform(*GAP_S)):
                kind = self.kinds[i % len(self.kinds)]
                i += 1
                self.one_fault(kind)
        except BaseException as exc:
            self.crashed = exc

    def one_fault(self, kind: str) -> None:
        destroys = kind in DESTROYS
        with _BUSY_LOCK:
            if destroys and self.destroying:
                return  # another node's copies are damaged and not repaired yet: skip
            free = [n for n in sorted(self.cluster.procs) if n not in self.busy]
            node = self.rng.choice(free)
            self.busy.add(node)
            if destroys:
                self.destroying.add(node)
        try:
            self._fault_on(kind, node)
            if destroys:
                self._wait_repaired(node)
        finally:
            with _BUSY_LOCK:
                self.busy.discard(node)
                self.destroying.discard(node)

    def _wait_repaired(self, node: int) -> None:
        """Until ``node`` refilled what it lost and repaired what it could not yet (or
        ``REPAIRED_TIMEOUT_S`` passed, or the round ended: the runner's repair phase
        checks the rest)."""
        def repaired() -> bool:
            if self.stop_event.is_set():
                return True  # the round ends: its repair phase waits for the repairs
            r = self.cluster.client(node).status().repair
            return r.partitions_rebuilding == 0 and r.scrub_deferred == 0

        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            wait_for(f"node {node} to repair its damage", repaired, REPAIRED_TIMEOUT_S)
        self.history.nemesis(action="repaired", node=node,
                             wait_s=round(time.monotonic() - started, 2))

    def _fault_on(self, kind: str, node: int) -> None:
        hold_s = self.rng.uniform(*HOLD_S)
        record: dict[str, Any] = {"fault": kind, "node": node, "hold_s": round(hold_s, 2)}
        inject = INJECTORS.get(kind) or getattr(type(self), f"inject_{kind}")
        heal = inject(self, node, record)
        record["t"] = round(time.monotonic(), 3)
        self.faults.append(record)
        self.history.nemesis(action="inject", **record)
        self.stop_event.wait(hold_s)  # cut short when the round ends
        started = time.monotonic()
        heal()
        self.history.nemesis(action="heal", fault=kind, node=node,
                             heal_s=round(time.monotonic() - started, 2))

    # Each inject_* does the damage and returns the function that heals it.

    def inject_kill(self, node: int, record: dict[str, Any]) -> Callable[[], None]:
        self.cluster.procs[node].kill(signal.SIGKILL)
        return lambda: self.cluster.procs[node].start()

    def inject_pause(self, node: int, record: dict[str, Any]) -> Callable[[], None]:
        pid = self.cluster.procs[node].pid
        os.kill(pid, signal.SIGSTOP)
        self.paused.add(node)

        def heal() -> None:
            os.kill(pid, signal.SIGCONT)
            self.paused.discard(node)
        return heal

    def inject_skew(self, node: int, record: dict[str, Any]) -> Callable[[], None]:
        offset = self.rng.randint(*SKEW_MS) * self.rng.choice((-1, 1))
        record["offset_ms"] = offset
        proc = self.cluster.procs[node]
        proc.stop()
        proc.env = {**(proc.env or {}), "CAIRN_CLOCK_OFFSET_MS": str(offset)}
        proc.start()

        def heal() -> None:
            proc.stop()
            proc.env = {k: v for k, v in (proc.env or {}).items()
                        if k != "CAIRN_CLOCK_OFFSET_MS"}
            proc.start()
        return heal

    def inject_flip(self, node: int, record: dict[str, Any]) -> Callable[[], None]:
        segments = sorted((self.cluster.root / f"node-{node}" / "segments").glob("*.seg"))
        flips: list[tuple[str, int, int]] = []
        for _ in range(self.rng.randint(*FLIPS)):
            if not segments:
                break
            seg = self.rng.choice(segments)
            try:
                size = seg.stat().st_size
                if size == 0:
                    continue
                offset = self.rng.randrange(size)
                mask = self.rng.randint(1, 255)
                with open(seg, "r+b") as f:
                    f.seek(offset)
                    old = f.read(1)
                    if not old:
                        continue
                    f.seek(offset)
                    f.write(bytes([old[0] ^ mask]))
            except FileNotFoundError:  # compacted away meanwhile
                continue
            flips.append((seg.name, offset, mask))
        record["flips"] = flips
        client = self.cluster.client(node)

        def heal() -> None:
            before = client.status().repair.scrub_passes
            client.scrub()
            wait_for(f"a scrub pass on node {node}",
                     lambda: client.status().repair.scrub_passes > before)
        return heal

    def inject_wipe(self, node: int, record: dict[str, Any]) -> Callable[[], None]:
        node_dir = self.cluster.root / f"node-{node}"
        record["removed"] = remove_contents(node_dir)
        client = self.cluster.client(node)

        def taken_back() -> bool:
            return all(d.state == "ok" for d in client.status().disks)

        def heal() -> None:
            try:
                wait_for(f"node {node} to take its wiped disk back", taken_back,
                         timeout_s=WIPE_LEFTOVER_S)
            except TimeoutError:
                # The node wrote into the directory while it was being deleted (or a
                # failed reopen left directories): the engine takes back only an empty
                # directory without a marker, so finish the wipe, as an operator would,
                # and say what was left in the history.
                left = sorted(str(p.relative_to(node_dir)) for p in node_dir.rglob("*"))
                self.history.nemesis(action="note", fault="wipe", node=node,
                                     leftovers=left[:50], removed_again=remove_contents(
                                         node_dir))
                wait_for(f"node {node} to take its wiped disk back", taken_back)
        return heal
