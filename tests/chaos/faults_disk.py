"""Disk faults for the cluster chaos suite: each node's data directory is its own tmpfs.

``setup`` mounts a size-limited tmpfs (``tests/support/disks.py``) at every node's data
directory before the cluster starts, under a shared bind of the cluster root so mounts
made later also reach nodes running in their own mount namespaces; the undoing goes on
the runner's ExitStack. Without root the kinds below are left out and the runner says
why (the existing ``wipe`` and ``flip`` then run on the root disk, as before).

Kinds (each injected on one node, held, healed; one fault at a time):

- ``enospc``: a ballast file fills the node's disk to ENOSPC while it runs; heal:
  delete it and wait until the node reports the disk ``ok`` (writable) again.
- ``readonly``: the disk turns read-only under the running node (a read-only bind over
  it, see disks.py); heal: read-write again, wait for ``ok``.
- ``vanish``: the disk disappears under the running node (``umount -l``); heal: an
  empty tmpfs is mounted there (the disk was replaced) and the node must take it back
  (anti-entropy refills it; the runner's repair phase waits for that).
- ``replace``: the node is stopped, its disk replaced by an empty one; heal: the node
  starts on it.
- ``lmdb-flip``: bytes flipped inside index entries (LMDB values) of the node's
  ``objects`` database. The entries are read with the lmdb module and their bytes
  (key then value, as a leaf node holds them) found in ``data.mdb``; only value bytes
  are flipped, every copy of them (a page copied on write leaves stale copies), with
  the node SIGSTOPped for the moment it takes so no commit moves pages meanwhile.
  Random offsets would break B-tree pages, which LMDB does not checksum at all. Heal:
  a scrub pass (which must repair the entries from the other replicas).
- ``truncate``: a segment file truncated at a random offset, or deleted, while the
  node runs; heal: a scrub pass, which must find the missing records damaged and
  repair them from the other replicas.

The size of each disk is ``CAIRN_CHAOS_DISK_SIZE`` (default 512m): a long run writes
more than that per node (write-once keys are never compacted away), so give long runs
a larger size or expect the nodes to fill (writes then fail, definitely or not, which
the checker accepts). Set ``CAIRN_CHAOS_TMPFS=0`` to keep the disks on the root disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import lmdb

from tests.support import disks as disks_mod
from tests.support.cluster import Cluster
from tests.support.disks import Disks

from . import nemesis
from .nemesis import Nemesis, wait_for

SIZE = os.environ.get("CAIRN_CHAOS_DISK_SIZE", disks_mod.DEFAULT_SIZE)
LMDB_FLIPS = (1, 4)  # index entries damaged per lmdb-flip fault
TRUNCATE_DELETE_P = 0.3  # share of truncate faults that delete the file instead
SEEN_TIMEOUT_S = 3.0  # the node's disk check runs every 2 s


def unavailable() -> str | None:
    if os.environ.get("CAIRN_CHAOS_TMPFS", "1") == "0":
        return "CAIRN_CHAOS_TMPFS=0: disks stay on the root disk"
    return disks_mod.available()


def _disks(cluster: Cluster) -> Disks:
    found = getattr(cluster, "disks", None)
    assert isinstance(found, Disks), "faults_disk.setup did not run"
    return found


def _data(cluster: Cluster, node: int) -> Path:
    return cluster.root / f"node-{node}"


def setup(cluster: Cluster, cleanup: contextlib.ExitStack) -> None:
    if unavailable():
        return
    d = Disks(cluster.root, SIZE)
    cleanup.callback(d.close)
    d.share_root()
    for node in cluster.procs:
        d.mount(_data(cluster, node))
    cluster.disks = d  # type: ignore[attr-defined]


def disks_ok(nem: Nemesis, node: int) -> bool:
    return all(d.state == "ok" for d in nem.cluster.client(node).status().disks)


def wait_ok(nem: Nemesis, node: int, what: str) -> None:
    wait_for(f"node {node} {what}", lambda: disks_ok(nem, node))


def seen_state(nem: Nemesis, node: int, timeout_s: float = SEEN_TIMEOUT_S) -> str:
    """The disk state the node reports once it noticed the fault (for the history:
    evidence that the fault landed), or "ok" if it did not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            states = {d.state for d in nem.cluster.client(node).status().disks}
        except grpc.RpcError as exc:
            states = {f"error {exc.code().name}"}
        if states != {"ok"} or time.monotonic() > deadline:
            return ",".join(sorted(states))
        time.sleep(0.1)


def scrub_pass(nem: Nemesis, node: int) -> None:
    client = nem.cluster.client(node)
    before = client.status().repair.scrub_passes
    client.scrub()
    wait_for(f"a scrub pass on node {node}",
             lambda: client.status().repair.scrub_passes > before)


# ---------------------------------------------------------------------- the kinds

def inject_enospc(nem: Nemesis, node: int, record: dict[str, Any]):
    d, path = _disks(nem.cluster), _data(nem.cluster, node)
    record["ballast_bytes"] = d.fill(path)
    record["seen"] = seen_state(nem, node)

    def heal() -> None:
        d.unfill(path)
        _restart_if_failed(nem, node, "enospc")
        wait_ok(nem, node, "to take writes again after ENOSPC")
    return heal


def _restart_if_failed(nem: Nemesis, node: int, fault: str) -> None:
    """A full or read-only disk comes back by itself once the cause is gone; a disk the
    node failed instead (seen once, seed 3010, cause not found) stays failed until the
    node restarts. Do what an operator would, and say so in the history."""
    try:
        states = [d.state for d in nem.cluster.client(node).status().disks]
    except grpc.RpcError:
        return
    if "failed" in states:
        nem.history.nemesis(action="note", fault=fault, node=node, disks=states,
                            restarted=True)
        proc = nem.cluster.procs[node]
        proc.stop()
        proc.start()


def inject_readonly(nem: Nemesis, node: int, record: dict[str, Any]):
    d, path = _disks(nem.cluster), _data(nem.cluster, node)
    d.read_only(path)
    record["seen"] = seen_state(nem, node)

    def heal() -> None:
        d.read_write(path)
        _restart_if_failed(nem, node, "readonly")
        wait_ok(nem, node, "to take writes again after a read-only disk")
    return heal


def inject_vanish(nem: Nemesis, node: int, record: dict[str, Any]):
    d, path = _disks(nem.cluster), _data(nem.cluster, node)
    d.vanish(path)
    record["seen"] = seen_state(nem, node)

    def heal() -> None:
        d.mount(path)
        wait_ok(nem, node, "to take its replaced disk back")
    return heal


def inject_replace(nem: Nemesis, node: int, record: dict[str, Any]):
    d, path = _disks(nem.cluster), _data(nem.cluster, node)
    proc = nem.cluster.procs[node]
    proc.stop()
    d.replace(path)

    def heal() -> None:
        proc.start()
        wait_ok(nem, node, "to run on its new disk")
    return heal


def _flip_entries(index_dir: Path, rng: Any, count: int) -> list[dict[str, Any]]:
    """Flip one byte inside the value of ``count`` random index entries, in every copy
    of their bytes in data.mdb. Run while no process writes the environment."""
    env = lmdb.open(str(index_dir), readonly=True, lock=False, max_dbs=8, subdir=True)
    try:
        objects = env.open_db(b"objects", create=False)
        with env.begin(db=objects, buffers=False) as txn:
            entries = [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()
    if not entries:
        return []
    path = index_dir / "data.mdb"
    data = path.read_bytes()
    done = []
    with open(path, "r+b") as f:
        for okey, value in rng.sample(entries, min(count, len(entries))):
            at = rng.randrange(len(value))
            mask = rng.randint(1, 255)
            needle = okey + value  # a leaf node: the key, then its value
            copies, pos = 0, data.find(needle)
            while pos >= 0:
                f.seek(pos + len(okey) + at)
                f.write(bytes([value[at] ^ mask]))
                copies += 1
                pos = data.find(needle, pos + 1)
            done.append({"key": okey.split(b"\0", 1)[-1].decode(errors="replace"),
                         "offset_in_value": at, "mask": mask, "copies": copies})
    return done


def inject_lmdb_flip(nem: Nemesis, node: int, record: dict[str, Any]):
    index_dir = _data(nem.cluster, node) / "index"
    pid = nem.cluster.procs[node].pid
    count = nem.rng.randint(*LMDB_FLIPS)
    os.kill(pid, signal.SIGSTOP)
    try:
        record["flips"] = _flip_entries(index_dir, nem.rng, count)
    finally:
        os.kill(pid, signal.SIGCONT)
    return lambda: scrub_pass(nem, node)


def inject_truncate(nem: Nemesis, node: int, record: dict[str, Any]):
    segments = sorted((_data(nem.cluster, node) / "segments").glob("*.seg"))
    if segments:
        seg = nem.rng.choice(segments)
        try:
            if nem.rng.random() < TRUNCATE_DELETE_P:
                seg.unlink()
                record.update(segment=seg.name, deleted=True)
            else:
                size = seg.stat().st_size
                at = nem.rng.randrange(size) if size else 0
                os.truncate(seg, at)
                record.update(segment=seg.name, size=size, truncated_at=at)
        except FileNotFoundError:  # compacted away meanwhile
            record.update(segment=seg.name, gone=True)
    return lambda: scrub_pass(nem, node)


nemesis.register_setup(setup)
for _kind, _inject in (("enospc", inject_enospc), ("readonly", inject_readonly),
                       ("vanish", inject_vanish), ("replace", inject_replace),
                       ("lmdb-flip", inject_lmdb_flip), ("truncate", inject_truncate)):
    nemesis.register(_kind, _inject, unavailable)
