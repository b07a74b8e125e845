"""The LMDB map starts at 1 MiB and must grow (doubling on MapFullError) many times while
reader threads keep reading: no crash, no error, no wrong bytes, and it all survives a
reopen. Growing the map while a transaction is open is undefined behaviour in LMDB, so
this is what the engine's transaction gate is for."""

from __future__ import annotations

import random
import threading

import pytest

from cairn.node.storage import Engine, EngineConfig
from cairn.types import Version

pytestmark = [pytest.mark.chaos]

MiB = 1024 * 1024
BUCKET = "growth"
OBJECTS = 6000
BATCH = 200
PAD = "m" * 3000  # metadata lives in the index entry: ~3 KiB of LMDB per object


def key_of(i: int) -> bytes:
    return b"obj-%06d" % i


def value_of(i: int) -> bytes:
    return b"value %d " % i * (1 + i % 7)


def check_object(engine: Engine, i: int) -> None:
    info = engine.head(BUCKET, key_of(i))
    assert info.version == Version(1, i, 1)
    assert info.metadata["pad"] == PAD
    assert info.metadata["n"] == str(i)
    assert engine.get(BUCKET, key_of(i)).read() == value_of(i)


@pytest.mark.timeout(120)
def test_map_grows_many_times_under_concurrent_readers(tmp_path):
    data = tmp_path / "disk"
    data.mkdir()
    config = EngineConfig(disks=(str(data),), min_free_bytes=0, map_size_bytes=MiB)
    written = 0
    stop = threading.Event()
    errors: list[str] = []
    reads = [0, 0, 0]

    engine = Engine(config).open()
    try:
        engine.create_bucket(BUCKET)

        def reader(tid: int) -> None:
            rng = random.Random(tid)
            while not stop.is_set():
                upto = written
                if not upto:
                    continue
                i = rng.randrange(upto)
                try:
                    check_object(engine, i)
                    if tid == 0 and i % 10 == 0:
                        listed = engine.list(BUCKET, start_after=key_of(i), limit=50)
                        known = [key_of(j) for j in range(i + 1, min(upto, i + 51))]
                        assert [o.key for o in listed][: len(known)] == known
                    reads[tid] += 1
                except Exception as exc:
                    errors.append(f"reader {tid}, object {i}: {exc!r}")
                    return

        threads = [threading.Thread(target=reader, args=(t,), daemon=True) for t in range(3)]
        for t in threads:
            t.start()
        try:
            for start in range(0, OBJECTS, BATCH):
                futures = [
                    engine.submit_put(BUCKET, key_of(i), value_of(i), version=Version(1, i, 1),
                                      metadata={"pad": PAD, "n": str(i)})
                    for i in range(start, start + BATCH)
                ]
                for future in futures:
                    assert future.result(timeout=30).applied
                written = start + BATCH
                if errors:
                    break
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not errors, errors[:5]
        assert all(not t.is_alive() for t in threads)
        resizes = engine.disks[0].stats.map_resizes
        assert resizes >= 5, f"the map grew only {resizes} times"
        assert min(reads) > 0, reads
        print(f"map resizes: {resizes}, reads per thread: {reads}")
    finally:
        engine.close()

    with Engine(config) as reopened:
        for i in range(OBJECTS):
            check_object(reopened, i)
        assert len(reopened.list(BUCKET, limit=OBJECTS + 1)) == OBJECTS
