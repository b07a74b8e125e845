"""The short cluster chaos suite CI runs on every change (docs/chaos.md).

``CI_ROUNDS`` rounds of ``CI_ROUND_SECONDS`` seconds of load and faults on a 5-node
cluster, each followed by repair, quorum reads of every key, a direct comparison of every
replica and the history checker. Under 3 minutes on this 2-core machine. A failure
prints the seed, the faults and the first violations; ``CAIRN_CHAOS_SEED=S`` replays the
schedule (``python -m tests.chaos --seed S`` runs longer suites).
"""

from __future__ import annotations

import os
import random

import pytest

from tests.chaos.runner import run

CI_ROUNDS = 6  # with CI_ROUND_SECONDS: about 15 faults, the kinds taken in turn
CI_ROUND_SECONDS = 15.0
CI_TIMEOUT_S = 600  # generous: a slow machine must fail on a verdict, not a timeout

pytestmark = [pytest.mark.chaos, pytest.mark.cluster, pytest.mark.timeout(CI_TIMEOUT_S)]


def test_nothing_acknowledged_is_lost_under_node_and_disk_faults(tmp_path):
    seed = int(os.environ.get("CAIRN_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (replay with CAIRN_CHAOS_SEED={seed})")
    result = run(CI_ROUNDS, seed, CI_ROUND_SECONDS, tmp_path / "history.jsonl")
    print(result.summary())
    assert result.ok, result.failure()
    assert result.rounds_done == CI_ROUNDS
    assert len(result.faults) >= CI_ROUNDS, "the nemesis injected too little"
    print(f"fault kinds injected: {sorted({f['fault'] for f in result.faults})}")
    assert result.report.ops["put ok"] > 0 and result.report.ops["delete ok"] > 0


CI_OVERLAP_ROUNDS = 2
CI_OVERLAP_ROUND_SECONDS = 12.0


def test_nothing_acknowledged_is_lost_under_two_overlapping_faults(tmp_path):
    """Two nemeses at once, each on its own node (with N = 3 a partition whose two
    replicas are both hit has no write quorum: writes fail, none acknowledged is lost)."""
    seed = int(os.environ.get("CAIRN_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed: {seed} (replay with CAIRN_CHAOS_SEED={seed})")
    result = run(CI_OVERLAP_ROUNDS, seed, CI_OVERLAP_ROUND_SECONDS,
                 tmp_path / "history.jsonl", nemeses=2)
    print(result.summary())
    assert result.ok, result.failure()
    assert result.rounds_done == CI_OVERLAP_ROUNDS
    assert len(result.faults) >= 2, "the nemeses injected too little"
