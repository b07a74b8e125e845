"""Run a chaos suite: a 5-node cluster, clients recording a history, a nemesis, checks.

``run()`` is shared by ``python -m tests.chaos`` and the pytest entry
(``test_cluster_chaos.py``). Each round: clients and the nemesis run for
``round_seconds``; then the nemesis heals its fault, every node runs an anti-entropy
pass (the admin Repair RPC, ``wait``), the keys are read at quorum (those reads join the
history), every replica of every key is compared directly on its node (ReplicaHead,
then ReplicaGet of the bytes) until they are identical or ``CONVERGE_TIMEOUT_S`` passes,
and the checker (``checker.py``) judges the whole history so far. The first round with a
violation ends the run. The cluster's data directory is always removed and every node
process reaped; the history file is kept when the run fails (or when asked for).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

import cairn
import tests.chaos.faults_disk  # registers the disk fault kinds
import tests.chaos.faults_io  # registers fsync-eio, torn, powerloss
import tests.chaos.faults_net  # noqa: F401  (registers the network partition kinds)
from cairn.cluster.placement import placement
from tests.support.cluster import Cluster

from . import checker
from .history import History, Tail, describe
from .nemesis import HEAL_TIMEOUT_S, SETUPS, Nemesis, available_kinds
from .workload import (
    BUCKET,
    CLIENT_TIMEOUT_S,
    LARGE_TIMEOUT_S,
    LargeWorker,
    RegisterWorker,
    SetWorker,
    read,
)

NODES = 5  # N=3, W=2, R=2: the defaults of a local map of 5 nodes
SET_WORKERS = 2
REGISTER_WORKERS = 3
LARGE_WORKERS = 1  # streamed 1-8 MiB values, whole and range reads (workload.py)
NODE_ENV = {
    "CAIRN_BACKGROUND_INTERVAL_S": "0.2",  # probe peers and replay hints often
    "CAIRN_REPLICA_TIMEOUT_S": "2",
    "CAIRN_ANTIENTROPY_INTERVAL_S": "5",  # a wiped disk refills within the round
    "CAIRN_SCRUB_RATE_BYTES_S": "0",
    # Large values of 4-8 MiB get a segment of their own, smaller ones go to the log.
    "CAIRN_ENGINE_LARGE_OBJECT_BYTES": str(4 * 1024 * 1024),
}
REPAIR_TIMEOUT_S = 120.0
CONVERGE_TIMEOUT_S = 60.0  # after repair, replicas must be identical within this
READ_THREADS = 4
PARTITIONS = 64
OLDER_KEYS_SAMPLE = 300  # keys of earlier rounds read again after each round
BYTES_SAMPLE = 20_000  # after the last round: keys whose replicas' bytes are compared
JOIN_TIMEOUT_S = max(CLIENT_TIMEOUT_S * 4, LARGE_TIMEOUT_S * 2)


class HarnessError(Exception):
    """The harness itself broke (a worker crashed, a heal timed out): not a cairn verdict
    by itself, but the run fails and keeps its history."""


@dataclass
class RunResult:
    seed: int
    history: Path
    report: checker.Report = field(default_factory=checker.Report)
    faults: list[dict[str, Any]] = field(default_factory=list)
    converge_s: list[float] = field(default_factory=list)
    rounds_done: int = 0
    elapsed_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.report.ok and self.error is None

    def summary(self) -> str:
        conv = (f"median {statistics.median(self.converge_s):.2f} s, max "
                f"{max(self.converge_s):.2f} s" if self.converge_s else "n/a")
        return (f"seed {self.seed}: {self.rounds_done} rounds in {self.elapsed_s:.1f} s; "
                f"{self.report.summary()}; replicas identical after repair: {conv}")

    def failure(self) -> str:
        text = checker.format_failure(self.seed, self.report, self.faults, str(self.history))
        return text + (f"\nharness error: {self.error}" if self.error else "")


def replica_state(cluster: Cluster, node: int, key: str) -> Any:
    try:
        info = cluster.client(node).local(BUCKET, key.encode())
    except grpc.RpcError as exc:
        return f"error {exc.code().name}"
    if info is None:
        return None
    v = info.version
    return (v.physical_ms, v.logical, v.node_id, info.deleted, info.checksum)


def replicas_of(cluster: Cluster, key: str) -> tuple[int, ...]:
    return tuple(placement(cluster.map, BUCKET, key.encode()).replicas)


def differing(cluster: Cluster, key: str) -> dict[int, Any] | None:
    """The replicas' states if they differ (or one could not answer), else None."""
    seen = {n: replica_state(cluster, n, key) for n in replicas_of(cluster, key)}
    bad = any(isinstance(s, str) for s in seen.values())
    return seen if bad or len(set(seen.values())) != 1 else None


def converge(cluster: Cluster, keys: list[str], timeout_s: float,
             bytes_sample: random.Random | None = None
             ) -> tuple[float, list[checker.Violation], dict[str, Any]]:
    """Wait until every replica of every key holds the same version, then compare the
    bytes each replica serves (with ``bytes_sample``, of at most ``BYTES_SAMPLE`` keys
    drawn with it: the end of a long run holds too many keys to read each three times).
    Returns the seconds it took, what never converged, and the keys that differed at
    the first look (for the history: repair had just run)."""
    started = time.monotonic()
    pending: dict[str, Any] = dict.fromkeys(keys)
    first: dict[str, Any] | None = None
    with ThreadPoolExecutor(READ_THREADS) as pool:
        while True:
            states = zip(pending, pool.map(lambda k: differing(cluster, k), pending),
                         strict=True)
            pending = {k: s for k, s in states if s is not None}
            if first is None:
                first = dict(pending)
            if not pending or time.monotonic() - started > timeout_s:
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        violations = [checker.Violation("replicas-differ", k, f"after {took:.1f} s: {s}")
                      for k, s in pending.items()]
        agreed = [k for k in keys if k not in pending]
        if bytes_sample is not None and len(agreed) > BYTES_SAMPLE:
            agreed = bytes_sample.sample(agreed, BYTES_SAMPLE)
        violations += [v for v in pool.map(lambda k: compare_bytes(cluster, k), agreed) if v]
    return took, violations, first or {}


def compare_bytes(cluster: Cluster, key: str) -> checker.Violation | None:
    """Read the value from each replica directly: identical, whole bytes everywhere."""
    nodes = replicas_of(cluster, key)
    state = replica_state(cluster, nodes[0], key)
    if state is None or state[3]:  # absent or a tombstone everywhere
        return None
    seen: dict[int, Any] = {}
    for n in nodes:
        try:
            seen[n] = describe(cluster.client(n).read_local(BUCKET, key.encode()))
        except grpc.RpcError as exc:
            seen[n] = f"error {exc.code().name}: {exc.details()}"
        except AssertionError as exc:
            seen[n] = f"bad stream: {exc}"
    values = list(seen.values())
    if any(isinstance(v, str) or not v["self_ok"] or v["key"] != key for v in values) or \
            len({v["sha256"] for v in values}) != 1:
        return checker.Violation("replica-corrupt", key, f"replicas serve {seen}")
    return None


def repair_all(cluster: Cluster) -> None:
    for node in cluster.procs:
        cluster.client(node).repair(wait=True, timeout=REPAIR_TIMEOUT_S)


def read_all(seeds: list[str], history: History, keys: list[str]) -> None:
    """A quorum read of every key, recorded in the history as process ``final``."""
    with cairn.Client(seeds, timeout=30) as client, ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(lambda k: read(client, history, "final", k), keys))


def run_round(cluster: Cluster, history: History, rng: random.Random, kinds: list[str],
              round_no: int, round_seconds: float, result: RunResult, nemeses: int = 1
              ) -> None:
    """One round of load and faults (``nemeses`` at a time, each on its own node), ended
    with every fault in force healed."""
    seeds = [p.address for p in cluster.procs.values()]
    stop = threading.Event()
    history.mark(round=round_no, phase="load")
    workers = [SetWorker(f"r{round_no}-set{i}", seeds, history,
                         random.Random(rng.randrange(2**63)), stop)
               for i in range(SET_WORKERS)]
    workers += [RegisterWorker(f"r{round_no}-reg{i}", seeds, history,
                               random.Random(rng.randrange(2**63)), stop)
                for i in range(REGISTER_WORKERS)]
    workers += [LargeWorker(f"r{round_no}-large{i}", seeds, history,
                            random.Random(rng.randrange(2**63)), stop)
                for i in range(LARGE_WORKERS)]
    # Each round goes on with the cycle of fault kinds where the last one stopped (so a
    # short run still meets every kind in turn); a second nemesis starts half a cycle
    # further on.
    busy: set[int] = set()
    destroying: set[int] = set()
    team = []
    for i in range(nemeses):
        offset = (len(result.faults) + i * len(kinds) // max(nemeses, 1)) % len(kinds)
        team.append(Nemesis(cluster, history, random.Random(rng.randrange(2**63)), stop,
                            kinds[offset:] + kinds[:offset], busy, name=f"nemesis{i}",
                            destroying=destroying))
    for t in [*workers, *team]:
        t.start()
    try:
        stop.wait(round_seconds)
    finally:
        stop.set()
        for nemesis in team:
            nemesis.join(HEAL_TIMEOUT_S * 3)
        for w in workers:
            w.join(JOIN_TIMEOUT_S)
        for nemesis in team:
            result.faults += nemesis.faults
            for node in list(nemesis.paused):  # the heal never ran: do not leave it frozen
                os.kill(cluster.procs[node].pid, signal.SIGCONT)
    for nemesis in team:
        if nemesis.is_alive() or nemesis.crashed:
            raise HarnessError(f"{nemesis.name} failed: {nemesis.crashed!r}")
    stuck = [w.name for w in workers if w.is_alive()]
    crashed = [f"{w.name}: {w.crashed!r}" for w in workers if w.crashed]
    if stuck or crashed:
        raise HarnessError(f"workers stuck {stuck}, crashed {crashed}")
    for node, proc in cluster.procs.items():  # every node must be up again
        if proc.proc is None or proc.proc.poll() is not None:
            raise HarnessError(f"node {node} is not running after the round")


def keys_to_read(entries: list[dict[str, Any]], round_no: int, last: bool,
                 rng: random.Random) -> list[str]:
    """Every key after the last round; after the others, the keys this round touched and
    a sample of the older ones (a wipe or a flip may have hit any of them)."""
    touched: set[str] = set()
    older: set[str] = set()
    for e in entries:
        if e["type"] == "invoke" and e["process"] != "final":
            mine = e["process"].startswith(f"r{round_no}-")
            (touched if mine else older).add(e["key"])
    older -= touched
    if last:
        return sorted(touched | older)
    sample = rng.sample(sorted(older), min(len(older), OLDER_KEYS_SAMPLE))
    return sorted(touched | set(sample))


def run(rounds: int, seed: int, round_seconds: float, history_path: Path | None = None,
        keep_data: bool = False, log: Any = print, only: list[str] | None = None,
        nemeses: int = 1) -> RunResult:
    """Run ``rounds`` rounds with ``seed`` and ``nemeses`` faults at a time; never
    raises for a cairn violation (see ``RunResult.ok``), always reaps the cluster and
    removes its data."""
    started = time.monotonic()
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix=f"cairn-chaos-{seed}-"))
    keep_history = history_path is not None
    path = history_path or Path(tempfile.gettempdir()) / f"cairn-chaos-{seed}-{work.name}.jsonl"
    path.unlink(missing_ok=True)
    history = History(path)
    tail = Tail(path)
    result = RunResult(seed, path)
    history.mark(seed=seed, rounds=rounds, round_seconds=round_seconds)
    cluster = Cluster(work / "cluster", nodes=NODES, env=dict.fromkeys(range(1, NODES + 1),
                                                                        NODE_ENV))
    # Fewer partitions than the default 1024: an anti-entropy pass over 5 nodes then takes
    # seconds, not tens of seconds, on 2 cores, and each partition holds more keys.
    cluster.map = type(cluster.map).from_dict({**cluster.map.to_dict(),
                                               "partitions": PARTITIONS})
    cluster.map_path.write_text(cluster.map.to_json())
    kinds, skipped = available_kinds()
    if only:
        unknown = set(only) - set(kinds) - set(skipped)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {kinds}")
        kinds = [k for k in kinds if k in only]
    for kind, why in skipped.items():
        log(f"fault {kind!r} is not injected on this machine: {why}")
    history.mark(kinds=kinds, skipped=skipped)
    rng.shuffle(kinds)
    cleanup = contextlib.ExitStack()
    try:
        for setup in SETUPS:
            setup(cluster, cleanup)
        cluster.start()
        seeds = [p.address for p in cluster.procs.values()]
        with cairn.Client(seeds, timeout=30) as c:
            c.create_bucket(BUCKET)
        for round_no in range(rounds):
            last = round_no == rounds - 1
            round_started = time.monotonic()
            run_round(cluster, history, rng, kinds, round_no, round_seconds, result, nemeses)
            history.mark(round=round_no, phase="repair")
            repair_all(cluster)
            tail.update()
            keys = keys_to_read(tail.entries, round_no, last=last, rng=rng)
            history.mark(round=round_no, phase="final-reads", keys=len(keys))
            read_all(seeds, history, keys)
            took, diverged, first = converge(
                cluster, keys, CONVERGE_TIMEOUT_S,
                bytes_sample=random.Random(rng.randrange(2**63)) if last else None)
            result.converge_s.append(took)
            history.mark(round=round_no, phase="checked", converge_s=round(took, 2),
                         differed_after_repair=len(first),
                         sample={k: str(v) for k, v in list(first.items())[:5]})
            tail.update()
            # Each round checks its own reads against the whole history; the last one
            # checks every read of the run again.
            result.report = checker.check(tail.entries,
                                          reads_from=-math.inf if last else round_started)
            result.report.violations += diverged
            result.rounds_done = round_no + 1
            log(f"round {round_no}: {result.report.summary()}; {len(first)} of {len(keys)} "
                f"keys differed between replicas right after repair, all identical "
                f"{took:.2f} s after repair")
            if not result.report.ok:
                break
    except (HarnessError, TimeoutError, grpc.RpcError, cairn.CairnError,
            RuntimeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        tail.update()
        result.report = checker.check(tail.entries)
    finally:
        for proc in cluster.procs.values():
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGCONT)  # a frozen node dies all the same
        cluster.stop()
        cleanup.close()
        history.close()
        if not keep_data:
            shutil.rmtree(work, ignore_errors=True)
        result.elapsed_s = time.monotonic() - started
    if result.ok and not keep_history:
        path.unlink(missing_ok=True)
    return result
