"""I/O faults for the cluster chaos suite, through the node's test-only fault layer.

Some disk faults cannot be caused from outside a process: an fsync that returns EIO,
the writes lost after the last fsync when the power goes, a torn sector. The node's
``fault_control`` setting (``cairn.node.server.faults``, docs/storage.md) puts a
``FaultyFileSystem`` under its engine that follows a small JSON control file; ``setup``
gives every node its own control file (``CAIRN_FAULT_CONTROL``, under the cluster
root, not in the data directory a ``wipe`` empties), and the kinds below write it.

Kinds (each injected on one node, held, healed; one fault at a time):

- ``fsync-eio``: every fsync of the node's segment files fails with EIO for the hold
  time. The node must acknowledge none of the writes those fsyncs were for, and must
  fail the disk (after a failed fsync the page cache cannot be trusted: PostgreSQL's
  "fsyncgate"). Heal: clear the fault; if a disk failed, restart the node (the disk is
  opened again and recovery cuts everything past its last commit).
- ``torn``: the node's next segment write stores only a prefix (whole sectors and a
  part of one: ``TORN_KEEP_BYTES``), then the node SIGKILLs itself. Heal: restart it;
  recovery must cut the torn tail.
- ``powerloss``: the node drops every byte written after its files' last fsync and
  SIGKILLs itself: at once, or (half the time, ``at_sync``) when its next segment fsync
  starts, so the writes that fsync was for are lost. Heal: restart it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster

from . import nemesis
from .nemesis import Nemesis, wait_for

ENV = "CAIRN_FAULT_CONTROL"
SECTOR_BYTES = 512
TORN_KEEP_BYTES = (1, 8 * SECTOR_BYTES)  # a torn write keeps this many bytes (not sector-aligned)
DIE_TIMEOUT_S = 20.0  # a node told to lose power must be dead within this
TORN_WAIT_S = 10.0  # after the hold, how long a torn write may take to meet a write
SETTLE_S = 0.5  # > the node's poll interval: a cleared file is surely seen by then


def control_path(cluster: Cluster, node: int) -> Path:
    return cluster.root / "io-faults" / f"node-{node}.json"


def write_control(path: Path, **wanted: Any) -> None:
    """Replace the control file atomically (the node reads it when its stat changes)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    os.replace(tmp, path)


def setup(cluster: Cluster, cleanup: contextlib.ExitStack) -> None:
    """Every node runs with the fault layer on and a control file saying "no fault"."""
    for node, proc in cluster.procs.items():
        path = control_path(cluster, node)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_control(path)
        proc.env = {**(proc.env or {}), ENV: str(path)}


def _alive(nem: Nemesis, node: int) -> bool:
    proc = nem.cluster.procs[node].proc
    return proc is not None and proc.poll() is None


def _wait_dead(nem: Nemesis, node: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(nem, node):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _fault_log(nem: Nemesis, node: int) -> str | None:
    """The fault layer's last words in the node's log, if it said any."""
    time.sleep(0.2)  # the log reader thread drains the dead process's stderr
    lines = [str(e.get("event")) for e in nem.cluster.procs[node].log
             if str(e.get("event", "")).startswith("fault layer:")]
    return lines[-1][:300] if lines else None


def inject_fsync_eio(nem: Nemesis, node: int, record: dict[str, Any]):
    path = control_path(nem.cluster, node)
    write_control(path, fsync_eio=True)

    def heal() -> None:
        write_control(path)
        time.sleep(SETTLE_S)
        proc = nem.cluster.procs[node]
        if not _alive(nem, node):  # it should not die of this, but if it did: restart
            nem.history.nemesis(action="note", fault="fsync-eio", node=node,
                                note="the node died under fsync EIO")
            proc.start()
            return
        try:
            states = [d.state for d in nem.cluster.client(node).status().disks]
        except Exception as exc:  # any failure to answer: restart it
            states = [f"status failed: {exc}"]
        failed = any(s != "ok" for s in states)
        nem.history.nemesis(action="note", fault="fsync-eio", node=node,
                            disks=states, restarted=failed)
        if failed:  # a failed disk is opened again only by a restart
            proc.stop()
            proc.start()
    return heal


def inject_torn(nem: Nemesis, node: int, record: dict[str, Any]):
    path = control_path(nem.cluster, node)
    keep = nem.rng.randint(*TORN_KEEP_BYTES)
    if keep % SECTOR_BYTES == 0:
        keep -= 1  # always a part of a sector
    record["keep_bytes"] = keep
    write_control(path, torn_write={"keep_bytes": keep})

    def heal() -> None:
        died = _wait_dead(nem, node, TORN_WAIT_S)
        write_control(path)
        if not died:  # no segment write came: disarmed now (a late one may still fire)
            time.sleep(SETTLE_S)
            died = not _alive(nem, node)
        nem.history.nemesis(action="note", fault="torn", node=node, fired=died,
                            log=_fault_log(nem, node) if died else None)
        if died:
            nem.cluster.procs[node].start()
    return heal


def inject_powerloss(nem: Nemesis, node: int, record: dict[str, Any]):
    path = control_path(nem.cluster, node)
    mode = nem.rng.choice(("now", "at_sync"))
    record["mode"] = mode
    write_control(path, power_loss=True if mode == "now" else mode)
    if not _wait_dead(nem, node, DIE_TIMEOUT_S):
        write_control(path)
        raise TimeoutError(f"node {node} did not cut its power within {DIE_TIMEOUT_S} s")
    write_control(path)  # before the restart, or the node would lose power again
    record["log"] = _fault_log(nem, node)
    proc = nem.cluster.procs[node]

    def heal() -> None:
        proc.start()
        wait_for(f"node {node} to serve after a power loss",
                 lambda: all(d.state == "ok" for d in nem.cluster.client(node).status().disks))
    return heal


nemesis.register("fsync-eio", inject_fsync_eio)
nemesis.register("torn", inject_torn)
nemesis.register("powerloss", inject_powerloss)
nemesis.register_setup(setup)
