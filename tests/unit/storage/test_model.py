"""The engine against a plain dict model (STYLE 4; bitcask's eqc fsm), reopening between steps."""

from __future__ import annotations

import random
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cairn.errors import NotFound
from cairn.node.storage import Engine, EngineConfig
from cairn.types import Version

pytestmark = pytest.mark.unit

KEYS = st.sampled_from([b"a", b"ab", b"b", b"ba", b"c/1", b"c/2", "\u00e9".encode(), b"zz"])


def _big(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Large values from a seed: cheap for hypothesis to generate and shrink."""
    return st.builds(lambda seed, n: random.Random(seed).randbytes(n),
                     st.integers(0, 2**32), st.integers(low, high))


VALUES = st.one_of(st.binary(max_size=200), _big(70_000, 140_000))
VERSIONS = st.integers(min_value=1, max_value=40)


class EngineModel(RuleBasedStateMachine):
    """Model: key -> (version, value or None for a tombstone). Newest version wins."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="cairn-model-")
        self.config = EngineConfig(
            disks=(self.dir,), min_free_bytes=0, segment_max_bytes=1 << 20,
            large_object_bytes=100_000, inline_max_bytes=64, block_size=4096,
        )
        self.engine = Engine(self.config).open()
        self.engine.create_bucket("mdl")
        self.model: dict[bytes, tuple[int, bytes | None]] = {}

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _expect_applied(self, key: bytes, version: int) -> bool:
        current = self.model.get(key)
        return current is None or version > current[0]

    @rule(key=KEYS, value=VALUES, version=VERSIONS)
    def put(self, key, value, version):
        applied = self._expect_applied(key, version)
        r = self.engine.put("mdl", key, value, version=Version(version, 0, 1))
        assert r.applied == applied
        if applied:
            self.model[key] = (version, value)

    @rule(key=KEYS, value=_big(100_001, 250_000), version=VERSIONS,
          chunk=st.integers(1000, 90_000))
    def put_stream(self, key, value, version, chunk):
        applied = self._expect_applied(key, version)
        chunks = [value[i : i + chunk] for i in range(0, len(value), chunk)]
        r = self.engine.put_stream("mdl", key, chunks, version=Version(version, 0, 1))
        assert r.applied == applied
        if applied:
            self.model[key] = (version, value)

    @rule(key=KEYS, version=VERSIONS)
    def delete(self, key, version):
        applied = self._expect_applied(key, version)
        r = self.engine.delete("mdl", key, version=Version(version, 0, 1))
        assert r.applied == applied
        if applied:
            self.model[key] = (version, None)

    @rule(key=KEYS)
    def get(self, key):
        current = self.model.get(key)
        if current is None or current[1] is None:
            with pytest.raises(NotFound):
                self.engine.get("mdl", key)
        else:
            assert self.engine.get("mdl", key).read() == current[1]
            assert self.engine.head("mdl", key).version == Version(current[0], 0, 1)

    @precondition(lambda self: any(v for _, v in self.model.values()))
    @rule(data=st.data())
    def ranged_get(self, data):
        key = data.draw(st.sampled_from(sorted(k for k, (_, v) in self.model.items() if v)))
        value = self.model[key][1]
        lo = data.draw(st.integers(0, len(value) - 1))
        hi = data.draw(st.integers(lo, len(value)))
        assert self.engine.get("mdl", key, start=lo, end=hi).read() == value[lo:hi]

    @rule(prefix=st.sampled_from([b"", b"a", b"b", b"c/", b"z"]), after=KEYS,
          limit=st.integers(0, 10))
    def list(self, prefix, after, limit):
        live = sorted(k for k, (_, v) in self.model.items() if v is not None)
        expected = [k for k in live if k.startswith(prefix) and k > after][:limit]
        got = [i.key for i in self.engine.list("mdl", prefix=prefix, start_after=after,
                                              limit=limit)]
        assert got == expected

    @rule()
    def reopen(self):
        self.engine.close()
        self.engine = Engine(self.config).open()

    @rule()
    def compact(self):
        self.engine.compact(force=True)

    @invariant()
    def partition_view_matches(self):
        seen = {i.key: (i.version.physical_ms, i.deleted) for i in self.engine.iter_partition(0)}
        assert seen == {k: (v, val is None) for k, (v, val) in self.model.items()}


TestEngineModel = EngineModel.TestCase
TestEngineModel.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
