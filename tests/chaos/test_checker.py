"""The chaos checker on hand-written histories: it finds each kind of violation, and
accepts what indeterminate outcomes and races allow. No processes, no sockets."""

from __future__ import annotations

import random

import pytest

from tests.chaos import checker
from tests.chaos.history import describe, make_value

pytestmark = [pytest.mark.unit]


class Script:
    """Builds history entries with explicit times."""

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.next_id = 1
        self.values: dict[tuple[str, int], dict] = {}

    def op(self, f, key, start, end, outcome="ok", version=None, writer="w", seq=None,
           found=None, read=None, **extra):
        op_id = self.next_id
        self.next_id += 1
        invoke = {"id": op_id, "type": "invoke", "t": start, "process": writer, "f": f,
                  "key": key}
        if f == "put":
            _, desc = make_value(key, writer, seq, 10, random.Random(seq))
            self.values[(writer, seq)] = desc
            invoke["value"] = {**desc, **extra}
        self.entries.append(invoke)
        done = {"id": op_id, "type": outcome, "t": end}
        if version:
            done["version"] = version
        if f == "get" and outcome == "ok":
            done["found"] = found
            if found:
                done["value"] = read
        self.entries.append(done)
        return self

    def put(self, key, start, end, version, seq, outcome="ok", **extra):
        return self.op("put", key, start, end, outcome, version if outcome == "ok" else None,
                       seq=seq, **extra)

    def get(self, key, start, end, seq=None, version=None, read=None):
        if seq is None and read is None:
            return self.op("get", key, start, end, found=False, writer="r")
        return self.op("get", key, start, end, version=version, writer="r", found=True,
                       read=read or self.values[("w", seq)])

    def kinds(self):
        return sorted(v.kind for v in checker.check(self.entries).violations)


def test_a_read_after_an_acknowledged_write_sees_it_or_newer():
    s = Script().put("k", 1, 2, "100.0.1", seq=1).put("k", 3, 4, "200.0.1", seq=2)
    s.get("k", 5, 6, seq=2, version="200.0.1")
    assert s.kinds() == []
    s.get("k", 7, 8, seq=1, version="100.0.1")  # the older write: a lost write
    assert s.kinds() == ["lost-write"]


def test_a_concurrent_read_may_see_either_write():
    s = Script().put("k", 1, 2, "100.0.1", seq=1).put("k", 3, 6, "200.0.1", seq=2)
    s.get("k", 4, 5, seq=1, version="100.0.1").get("k", 4, 5, seq=2, version="200.0.1")
    assert s.kinds() == []


def test_versions_not_wall_times_order_writes():
    # The second put was acknowledged later but carries the older version (concurrent
    # writes): reading the first one afterwards is last-writer-wins, not a loss.
    s = Script().put("k", 1, 5, "300.0.1", seq=1).put("k", 2, 6, "200.0.2", seq=2)
    s.get("k", 7, 8, seq=1, version="300.0.1")
    assert s.kinds() == []


def test_not_found_after_an_acknowledged_put_is_a_lost_write_unless_a_delete_explains_it():
    s = Script().put("k", 1, 2, "100.0.1", seq=1).get("k", 3, 4)
    assert s.kinds() == ["lost-write"]
    s = Script().put("k", 1, 2, "100.0.1", seq=1)
    s.op("delete", "k", 2.5, 9, outcome="info")  # indeterminate: may have happened
    s.get("k", 3, 4)
    assert s.kinds() == []
    s = Script().put("k", 1, 2, "100.0.1", seq=1)
    s.op("delete", "k", 2.5, 2.6, outcome="fail")  # definitely did not happen
    s.get("k", 3, 4)
    assert s.kinds() == ["lost-write"]


def test_a_deleted_key_that_comes_back_is_a_resurrection():
    s = Script().put("k", 1, 2, "100.0.1", seq=1)
    s.op("delete", "k", 3, 4, version="150.0.2")
    s.get("k", 5, 6, seq=1, version="100.0.1")
    assert s.kinds() == ["resurrection"]
    s.put("k", 7, 8, "160.0.1", seq=2).get("k", 9, 10, seq=2, version="160.0.1")
    assert s.kinds() == ["resurrection"]  # a later put brings it back legitimately


def test_indeterminate_writes_may_appear_failed_ones_never():
    s = Script().put("k", 1, 9, None, seq=1, outcome="info")
    s.get("k", 2, 3, seq=1, version="100.0.1")
    assert s.kinds() == []
    s = Script().put("k", 1, 2, None, seq=1, outcome="fail")
    s.get("k", 3, 4, seq=1, version="100.0.1")
    assert s.kinds() == ["failed-write-visible"]


def test_values_never_written_or_damaged_are_caught():
    s = Script().put("k", 1, 2, "100.0.1", seq=1)
    ghost = make_value("k", "w", 99, 10, random.Random(0))[1]
    s.get("k", 3, 4, version="100.0.1", read=ghost)
    assert s.kinds() == ["never-written"]
    raw = make_value("k", "w", 1, 10, random.Random(1))[0]
    torn = describe(raw[:-1] + bytes([raw[-1] ^ 1]))
    s = Script().put("k", 1, 2, "100.0.1", seq=1).get("k", 3, 4, version="100.0.1",
                                                         read=torn)
    assert s.kinds() == ["corrupt-read"]
    other = make_value("k", "w", 1, 10, random.Random(12345))[1]  # same name, other bytes
    s = Script().put("k", 1, 2, "100.0.1", seq=1).get("k", 3, 4, version="100.0.1",
                                                         read=other)
    assert s.kinds() == ["corrupt-read"]


def test_a_read_of_a_put_invoked_after_the_read_returned_is_never_written():
    s = Script().get("k", 1, 2, read=make_value("k", "w", 1, 10, random.Random(1))[1],
                     version="100.0.1")
    s.put("k", 3, 4, "100.0.1", seq=1)
    assert s.kinds() == ["never-written"]


def test_an_acknowledged_put_with_a_wrong_checksum_is_a_violation():
    s = Script().put("k", 1, 2, "100.0.1", seq=1, bad_checksum=True)
    assert s.kinds() == ["bad-checksum-accepted"]
