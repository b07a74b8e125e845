"""SIGKILL a writing engine process at random moments; nothing acknowledged may be lost.

A writer process (``workload.py crash``) puts from several threads, pipelines
``submit_put``, streams 10 MiB objects and deletes, reporting each intent and each
acknowledgement on a pipe. The test kills it at a seeded random moment, reopens the
engine in-process and checks every key against the model: the newest acknowledged write
(or a newer attempted one) is served with exactly its bytes, deletes read NotFound,
nothing else is served, scrub finds nothing damaged, and no segment file leaks. The store
accumulates over all rounds; every tenth round also compacts it.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest

from cairn.node.storage import Engine

from .workload import BUCKET, Model, check_segment_files, crash_config, scrub_clean

pytestmark = [pytest.mark.chaos]

ROUNDS = 50
READY_TIMEOUT_S = 30.0


@pytest.mark.timeout(240)
def test_sigkill_never_loses_acknowledged_writes(tmp_path, spawn, chaos_seed):
    rng = random.Random(chaos_seed)
    data = tmp_path / "disk"
    data.mkdir()
    with Engine(crash_config(data)) as engine:
        engine.create_bucket(BUCKET)
    model = Model()
    totals = {"acks": 0, "survivors": 0, "early_kills": 0, "compactions": 0, "streams": 0,
              "deletes": 0}
    started = time.monotonic()
    for round_no in range(ROUNDS):
        where = f"seed {chaos_seed}, round {round_no}"
        child = spawn([
            "crash", "--dir", str(data), "--config", "crash", "--seed", str(chaos_seed),
            "--round", str(round_no), "--threads", "4",
        ])
        if rng.random() < 0.1:
            # Kill while the engine opens and recovers the previous round's tail.
            time.sleep(rng.uniform(0.0, 0.35))
            totals["early_kills"] += 1
        else:
            assert child.wait_for("READY", READY_TIMEOUT_S), (
                f"{where}: writer never got ready: {child.stderr()}"
            )
            time.sleep(rng.uniform(0.2, 1.5))
        child.kill()
        assert not child.errors(), f"{where}: writer failed: {child.errors()}\n{child.stderr()}"
        acks_before = model.acks
        totals["streams"] += sum(line.startswith("A P big") for line in child.lines)
        totals["deletes"] += sum(line.startswith("A D ") for line in child.lines)
        model.feed(child.lines)
        totals["acks"] += model.acks - acks_before
        with Engine(crash_config(data)) as engine:
            try:
                check_segment_files(engine)
                stats = model.check(engine)
                totals["survivors"] += stats.unacked_survivors
                scrub_clean(engine)
                if round_no % 10 == 9:
                    engine.compact()
                    totals["compactions"] += 1
                    model.check(engine, pin=False)
                    scrub_clean(engine)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from exc
            status = engine.status()[0]
            assert status.state == "ok", f"{where}: disk is {status.state}: {status.error}"
            assert status.integrity_errors == 0, f"{where}: {status}"
    print(f"crash test: {ROUNDS} rounds in {time.monotonic() - started:.1f}s, {totals}, "
          f"{len(model.keys)} keys")
    # The kills must have hit a busy writer: plenty of acknowledgements were checked.
    assert totals["acks"] > ROUNDS * 20, totals
    assert totals["streams"] > 0, totals
    assert totals["deletes"] > 0, totals
    shutil.rmtree(data)  # hundreds of MiB; kept only when the test fails
