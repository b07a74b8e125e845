"""AsyncEngine: small writes appended on the event loop, committed writes handed back in
one wake-up per group commit, and errors surfacing on the right caller."""

from __future__ import annotations

import asyncio

import pytest

from cairn.errors import DiskUnavailable, IntegrityError
from cairn.node.storage import Engine, EngineConfig, Fault, FaultyFileSystem
from cairn.node.storage.aio import LOOP_APPEND_BYTES, AsyncEngine
from cairn.types import Version

pytestmark = pytest.mark.unit


def v(n: int) -> Version:
    return Version(1_700_000_000_000 + n, 0, 1)


@pytest.fixture
def aengine(tmp_path):
    fs = FaultyFileSystem()
    (tmp_path / "d").mkdir()
    engine = Engine(EngineConfig(disks=(str(tmp_path / "d"),), min_free_bytes=0),
                    fs=fs).open()
    engine.create_bucket("bkt")
    a = AsyncEngine(engine, max_workers=2)
    a.fs = fs  # type: ignore[attr-defined]
    yield a
    a.close()


async def test_many_concurrent_small_puts_all_commit_with_their_own_results(aengine):
    results = await asyncio.gather(*(
        aengine.put("bkt", b"k%03d" % i, b"x" * i, version=v(i)) for i in range(200)))
    assert [r.applied for r in results] == [True] * 200
    assert [r.info.size for r in results] == list(range(200))
    # Group commit batched them: far fewer commits than writes.
    assert sum(d.stats.commits for d in aengine.engine.disks) < 200
    for i in (0, 57, 199):
        reader = await aengine.get("bkt", b"k%03d" % i)
        assert reader.read() == b"x" * i


async def test_a_stale_write_and_a_delete_answer_through_the_same_path(aengine):
    assert (await aengine.put("bkt", b"k", b"new", version=v(5))).applied
    stale = await aengine.put("bkt", b"k", b"old", version=v(1))
    assert not stale.applied and stale.info.version == v(5)
    assert (await aengine.delete("bkt", b"k", version=v(6))).applied


async def test_a_bad_checksum_raises_on_the_caller_and_stores_nothing(aengine):
    with pytest.raises(IntegrityError):
        await aengine.put("bkt", b"k", b"abc", version=v(1), checksum=1)
    assert (await aengine.put("bkt", b"k2", b"ok", version=v(1))).applied
    with pytest.raises(Exception, match="not found"):
        await aengine.head("bkt", b"k")


async def test_a_failed_commit_fails_every_waiter_of_its_batch(aengine):
    aengine.fs.inject(Fault("fsync", times=-1))
    outcomes = await asyncio.gather(*(
        aengine.put("bkt", b"f%d" % i, b"y", version=v(i)) for i in range(20)),
        return_exceptions=True)
    assert all(isinstance(o, DiskUnavailable) for o in outcomes), outcomes


async def test_a_cancelled_waiter_does_not_disturb_the_others(aengine):
    tasks = [asyncio.ensure_future(aengine.put("bkt", b"c%d" % i, b"z", version=v(i)))
             for i in range(30)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert all(d.applied for i, d in enumerate(done) if i != 3)


async def test_large_values_still_go_through_the_pool(aengine):
    big = b"L" * (LOOP_APPEND_BYTES + 1)
    result = await aengine.put("bkt", b"big", big, version=v(1))
    assert result.applied and result.info.size == len(big)
