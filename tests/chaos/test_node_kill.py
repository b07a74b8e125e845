"""SIGKILL a node process during a stream of SDK writes; nothing acknowledged may be lost.

Several threads share one ``cairn.Client`` and put values of 100 B to 3 MiB (so some
take the unary fast path and some the ``Put`` stream, through ``put`` and ``upload``)
and delete, on a small set of keys, recording when each call started and when the SDK
acknowledged it. At a seeded random moment (every other round: just after a streamed
put began) the node is killed with SIGKILL, then restarted on the same data directory
and port. Every key is then read and checked against the history:

- the value served is one that was attempted for that key (or what the key held when
  the round began), byte for byte: nothing half-written is ever served;
- it is not older than an acknowledged write: a write or delete W may be what the key
  holds only if no acknowledged call on that key *started after W was acknowledged*
  (a write that starts after another finished always wins, DESIGN.md "The cluster").
  A call that failed (``cairn.Unavailable`` during the kill) is indeterminate: it may or
  may not have taken effect, so it never rules anything out and is always allowed;
- listing the bucket shows exactly the keys that read as present; the disk is "ok" with
  no integrity errors, and no segment file is left over (temporary or unindexed);
- the restarted node logged no error (its recovery lost nothing).

The rounds accumulate on one data directory; what a round reads is what the next one
starts from. ``CAIRN_CHAOS_SEED`` replays the schedule and the values (not the exact
instants of the kills, which depend on timing); ``CAIRN_CHAOS_ROUNDS`` sets the number
of rounds (a soak run wants more, and a longer ``--timeout``).

A second, small test checks that the node's status counts objects and tombstones apart,
before and after a kill.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field

import grpc
import pytest

import cairn
from cairn.v1 import admin_pb2, admin_pb2_grpc
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

MiB = 1 << 20
ROUNDS = int(os.environ.get("CAIRN_CHAOS_ROUNDS") or 6)  # more for a soak run
THREADS = 4
KEYS = 24
BUCKET = "chaos"
CLIENT_TIMEOUT_S = 20.0
JOIN_TIMEOUT_S = 60.0


@dataclass
class Op:
    """One SDK call of the workload: a put (``sha`` of its bytes) or a delete (``sha`` None)."""

    key: str
    sha: str | None
    size: int
    path: str  # "put-small", "put-stream", "upload-stream", "upload-small" or "delete"
    start: float
    end: float = math.inf  # when the SDK acknowledged it; inf while unknown or failed
    error: BaseException | None = None
    failed_at: float = math.inf

    @property
    def acked(self) -> bool:
        return self.end != math.inf

    def __str__(self) -> str:
        what = "delete" if self.sha is None else f"{self.path} {self.size} B sha {self.sha[:12]}"
        outcome = f"acked at {self.end:.4f}" if self.acked else f"failed: {self.error!r}"
        return f"{what}, started {self.start:.4f}, {outcome}"


@dataclass
class Round:
    """The history of one round, shared by the worker threads (list.append is atomic)."""

    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    streaming: threading.Event = field(default_factory=threading.Event)
    crashed: list[BaseException] = field(default_factory=list)  # a worker died: a test bug


def value_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.55:
        return rng.randint(100, 64 * 1024)  # small
    if r < 0.75:
        return rng.randint(64 * 1024, MiB)  # still the unary fast path
    return rng.randint(MiB + 1, 3 * MiB)  # the Put stream


def worker(client: cairn.Client, rng: random.Random, state: Round) -> None:
    try:
        while not state.stop.is_set():
            key = f"k{rng.randrange(KEYS):02d}"
            value = None if rng.random() < 0.12 else rng.randbytes(value_size(rng))
            via_upload = rng.random() < 0.3
            if value is None:
                op = Op(key, None, 0, "delete", time.monotonic())
            else:
                path = ("upload" if via_upload else "put") + (
                    "-stream" if len(value) > MiB else "-small")
                op = Op(key, hashlib.sha256(value).hexdigest(), len(value), path,
                        time.monotonic())
            state.ops.append(op)  # before the call: a failed call is part of the history
            try:
                if value is None:
                    client.delete(BUCKET, key)
                else:
                    if len(value) > MiB:
                        state.streaming.set()
                    if via_upload:
                        client.upload(BUCKET, key, io.BytesIO(value))
                    else:
                        client.put(BUCKET, key, value)
            except cairn.CairnError as exc:  # judged by the test: only Unavailable may pass
                op.error, op.failed_at = exc, time.monotonic()
            else:
                op.end = time.monotonic()
    except BaseException as exc:
        state.crashed.append(exc)


def valid_outcomes(before: str | None, ops: list[Op]) -> dict[str | None, list[str]]:
    """What a key may hold after a round: sha (None: absent) -> why it is allowed.

    A write or delete W is allowed unless an acknowledged call started after W was
    acknowledged. ``before`` (what the key held when the round began) counts as a write
    acknowledged before every call of the round.
    """
    latest_acked_start = max((o.start for o in ops if o.acked), default=-math.inf)
    allowed: dict[str | None, list[str]] = {}
    if latest_acked_start == -math.inf:
        allowed.setdefault(before, []).append("held when the round began")
    for op in ops:
        if not latest_acked_start > op.end:
            allowed.setdefault(op.sha, []).append(str(op))
    return allowed


def read_state(client: cairn.Client, keys: list[str]) -> dict[str, str | None]:
    state: dict[str, str | None] = {}
    for key in keys:
        try:
            value = client.get(BUCKET, key)
        except cairn.NotFound:
            state[key] = None
            continue
        assert isinstance(value, bytes), f"{key}: get returned {type(value).__name__}"
        assert client.head(BUCKET, key).size == len(value), f"{key}: head disagrees with get"
        state[key] = hashlib.sha256(value).hexdigest()
    return state


def node_status(address: str) -> admin_pb2.NodeStatus:
    with grpc.insecure_channel(address) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        return stub.Status(admin_pb2.StatusRequest(), timeout=10).status


@pytest.fixture
def chaos_seed() -> int:
    seed = int(os.environ.get("CAIRN_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (replay with CAIRN_CHAOS_SEED={seed})")
    return seed


def test_sigkill_during_sdk_writes_loses_nothing_acknowledged(tmp_path, chaos_seed):
    rng = random.Random(chaos_seed)
    data = tmp_path / "node-data"
    keys = [f"k{i:02d}" for i in range(KEYS)]
    held: dict[str, str | None] = dict.fromkeys(keys)
    totals = {"acked": 0, "failed": 0, "acked_streams": 0, "acked_deletes": 0,
              "unacked_survivors": 0, "torn_tails_cut": 0, "unindexed_segments_removed": 0}
    findings: list[str] = []
    started = time.monotonic()
    with NodeProcess(data) as node:
        with cairn.Client([node.address]) as c:
            c.create_bucket(BUCKET)
        for round_no in range(ROUNDS):
            where = f"seed {chaos_seed}, round {round_no}"
            state = Round()
            log_from = len(node.log)
            with cairn.Client([node.address], timeout=CLIENT_TIMEOUT_S) as client:
                threads = [
                    threading.Thread(target=worker, name=f"writer-{i}", daemon=True,
                                     args=(client, random.Random(rng.randrange(2**63)), state))
                    for i in range(THREADS)
                ]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.3, 0.8))  # let every path get going
                if round_no % 2:
                    state.streaming.clear()  # kill just after a streamed put begins
                    assert state.streaming.wait(30), f"{where}: no streamed put began"
                    time.sleep(rng.uniform(0.0, 0.02))
                else:
                    time.sleep(rng.uniform(0.0, 1.5))
                killed_at = time.monotonic()
                node.kill()
                state.stop.set()
                for t in threads:
                    t.join(JOIN_TIMEOUT_S)
                assert not any(t.is_alive() for t in threads), f"{where}: a writer hangs"
            assert not state.crashed, f"{where}: a writer crashed: {state.crashed!r}"

            # Calls may fail only because the node was killed, and only as Unavailable.
            # Noted here and asserted after the last round, so that the durability checks
            # (the point of this test) run in every round all the same.
            failed = [o for o in state.ops if not o.acked]
            odd = [o for o in failed if not isinstance(o.error, cairn.Unavailable)]
            early = [o for o in failed
                     if o.failed_at < killed_at and isinstance(o.error, cairn.Unavailable)]
            findings += [f"{where}: unexpected error: {o}" for o in odd]
            findings += [f"{where}: failed before the kill: {o}" for o in early]

            node.start()  # same data, same port
            with cairn.Client([node.address], timeout=60) as c:
                now = read_state(c, keys)
                listed = {info.key for info in c.list(BUCKET)}
            for key in keys:
                ops = [o for o in state.ops if o.key == key]
                allowed = valid_outcomes(held[key], ops)
                assert now[key] in allowed, (
                    f"{where}: key {key} holds "
                    f"{'nothing' if now[key] is None else 'sha ' + now[key][:12]}, which is "
                    f"not allowed; allowed: "
                    + "; ".join(f"{'absent' if s is None else s[:12]} ({why[0]})"
                                for s, why in allowed.items())
                    + "\nhistory of the key:\n  " + "\n  ".join(map(str, ops))
                )
                if now[key] is not None and not any(o.sha == now[key] for o in ops if o.acked):
                    totals["unacked_survivors"] += now[key] != held[key]
            assert listed == {k for k, v in now.items() if v is not None}, (
                f"{where}: list disagrees with reads: {sorted(listed)} vs {now}"
            )
            status = node_status(node.address)
            assert [d.state for d in status.disks] == ["ok"], f"{where}: {status.disks}"
            assert status.counters.get("integrity_errors", 0) == 0, f"{where}: {status}"
            files = sorted(p.name for p in (data / "segments").iterdir())
            assert not [f for f in files if not f.endswith(".seg")], (
                f"{where}: leftover files after recovery: {files}")
            assert len(files) == status.disks[0].segment_count, (
                f"{where}: {len(files)} segment files, the index knows "
                f"{status.disks[0].segment_count}: {files}")
            errors = [line for line in node.log[log_from:] if line.get("level") in
                      ("error", "critical")]
            assert not errors, f"{where}: the node logged errors: {errors[:3]}"
            # What recovery found (not asserted: it shows the kills hit writes in flight).
            events = [str(line.get("event", "")) for line in node.log[log_from:]]
            totals["torn_tails_cut"] += sum("past the last commit" in e for e in events)
            totals["unindexed_segments_removed"] += sum(
                e.startswith("removing uncommitted segment") for e in events)
            held = now
            acked = [o for o in state.ops if o.acked]
            totals["acked"] += len(acked)
            totals["failed"] += len(failed)
            totals["acked_streams"] += sum(o.path.endswith("-stream") for o in acked)
            totals["acked_deletes"] += sum(o.sha is None for o in acked)
            print(f"round {round_no}: {len(acked)} acked, {len(failed)} failed "
                  f"({', '.join(sorted({o.path for o in failed}))}), "
                  f"{sum(v is not None for v in now.values())} keys present")
    print(f"node kill test: {ROUNDS} rounds in {time.monotonic() - started:.1f} s, {totals}")
    assert not findings, f"{len(findings)} calls failed without a kill to blame:\n" + "\n".join(
        findings[:10])
    # The kills hit a busy node: plenty was acknowledged, streamed and deleted.
    assert totals["acked"] > ROUNDS * 10, totals
    assert totals["acked_streams"] > 0, totals
    assert totals["acked_deletes"] > 0, totals
    assert totals["failed"] > 0, totals  # some calls were in flight at the kills
    shutil.rmtree(data)  # kept only when the test fails


def test_status_counts_objects_and_tombstones_apart_across_a_kill(tmp_path):
    """NodeStatus.object_count does not count tombstones, and tombstone_count does
    (proto/cairn/v1/admin.proto), before and after a SIGKILL and restart."""
    with NodeProcess(tmp_path / "node-data") as node:
        with cairn.Client([node.address]) as c:
            c.create_bucket(BUCKET)
            for i in range(3):
                c.put(BUCKET, f"small-{i}", b"x" * 100)
            c.put(BUCKET, "large", b"y" * (2 * MiB))  # a segment of its own
            c.delete(BUCKET, "small-0")
            c.delete(BUCKET, "never-written")  # a tombstone all the same
            present = sorted(info.key for info in c.list(BUCKET))
        assert present == ["large", "small-1", "small-2"]
        before = node_status(node.address)
        node.kill()
        node.start()
        after = node_status(node.address)
    counts = [(s.object_count, s.tombstone_count) for s in (before, after)]
    assert counts == [(3, 2), (3, 2)], "(object_count, tombstone_count) before/after the kill"
