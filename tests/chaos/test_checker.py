"""The chaos checker on hand-written histories: it finds each kind of violation, and
accepts what indeterminate outcomes and races allow. No processes, no sockets."""

from __future__ import annotations

import random

import pytest

from tests.chaos import checker
from tests.chaos.history import LargeValue, describe, describe_chunks, describe_range, make_value

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


# --------------------------------------------------------------------- large values, ranges

LARGE_SIZE = 3 * 65536 + 1000  # a few blocks and a partial one


def large_put(s, key, start, end, version, seq, outcome="ok"):
    value = LargeValue.create(key, "w", seq, LARGE_SIZE, seed=seq * 7919)
    op_id = s.next_id
    s.next_id += 1
    s.entries.append({"id": op_id, "type": "invoke", "t": start, "process": "w", "f": "put",
                      "key": key, "value": value.description()})
    done = {"id": op_id, "type": outcome, "t": end}
    if outcome == "ok":
        done["version"] = version
    s.entries.append(done)
    return value


def range_get(s, key, start, end, byte_range, data=None, version=None, outcome="ok"):
    """A range read that returned ``data`` (None: not found)."""
    op_id = s.next_id
    s.next_id += 1
    s.entries.append({"id": op_id, "type": "invoke", "t": start, "process": "r",
                      "f": "get-range", "key": key, "start": byte_range[0],
                      "end": byte_range[1]})
    done = {"id": op_id, "type": outcome, "t": end}
    if outcome == "ok":
        done["found"] = data is not None
        if data is not None:
            done["value"] = describe_range(byte_range[0], data)
        if version:
            done["version"] = version
    s.entries.append(done)


def whole(value):
    return b"".join(value.chunks())


def test_range_reads_are_recomputed_from_the_seed_the_put_recorded():
    s = Script()
    v = large_put(s, "big", 1, 2, "100.0.1", seq=1)
    raw = whole(v)
    for a, b in [(0, 10), (5, 70_000), (len(raw) - 3, None), (100, len(raw) + 999),
                 (len(v.head()), len(v.head()) + 65536)]:
        range_get(s, "big", 3, 4, (a, b), raw[a:b], version="100.0.1")
    range_get(s, "big", 3, 4, (10, 20), raw[10:20])  # get_bytes: no version comes back
    assert s.kinds() == []


@pytest.mark.parametrize("damage", ["flipped", "shifted", "short", "long", "other-seed"])
def test_a_range_read_returning_wrong_bytes_is_a_corrupt_read(damage):
    s = Script()
    v = large_put(s, "big", 1, 2, "100.0.1", seq=1)
    raw = whole(v)
    a, b = 1000, 90_000
    data = {
        "flipped": raw[a:b - 1] + bytes([raw[b - 1] ^ 0x10]),
        "shifted": raw[a + 1:b + 1],
        "short": raw[a:b - 1],
        "long": raw[a:b + 1],
        "other-seed": whole(LargeValue.create("big", "w", 1, LARGE_SIZE, seed=1))[a:b],
    }[damage]
    range_get(s, "big", 3, 4, (a, b), data, version="100.0.1")
    assert s.kinds() == ["corrupt-read"]


def test_range_reads_of_puts_never_invoked_or_failed():
    s = Script()
    range_get(s, "big", 1, 2, (0, 10), b"0123456789")
    assert s.kinds() == ["never-written"]
    s = Script()
    v = large_put(s, "big", 1, 2, None, seq=1, outcome="fail")
    range_get(s, "big", 3, 4, (0, 100), whole(v)[:100])
    assert s.kinds() == ["failed-write-visible"]
    s = Script()
    v = large_put(s, "big", 1, 9, None, seq=1, outcome="info")  # indeterminate: may appear
    range_get(s, "big", 3, 4, (0, 100), whole(v)[:100])
    assert s.kinds() == []


def test_a_lost_large_write_is_caught_by_range_and_whole_reads():
    s = Script()
    large_put(s, "big", 1, 2, "100.0.1", seq=1)
    range_get(s, "big", 3, 4, (0, 100))  # not found after the put was acknowledged
    assert s.kinds() == ["lost-write"]
    s = Script()
    large_put(s, "big", 1, 2, "100.0.1", seq=1)
    s.get("big", 3, 4)  # a final whole read that found nothing
    assert s.kinds() == ["lost-write"]
    s = Script()
    large_put(s, "big", 1, 9, None, seq=1, outcome="info")
    range_get(s, "big", 3, 4, (0, 100))
    s.get("big", 5, 6)
    assert s.kinds() == []


def test_a_whole_large_read_is_checked_like_any_value():
    s = Script()
    v = large_put(s, "big", 1, 2, "100.0.1", seq=1)
    raw = whole(v)
    s.get("big", 3, 4, version="100.0.1", read=describe_chunks([raw[:1000], raw[1000:]]))
    assert s.kinds() == []
    torn = raw[:-1] + bytes([raw[-1] ^ 1])
    s.get("big", 5, 6, version="100.0.1", read=describe_chunks([torn]))
    assert s.kinds() == ["corrupt-read"]


def test_a_range_read_older_than_an_acknowledged_write_is_a_lost_write():
    s = Script()
    v1 = large_put(s, "big", 1, 2, "100.0.1", seq=1)
    large_put(s, "big", 3, 4, "200.0.1", seq=2)
    range_get(s, "big", 5, 6, (0, 500), whole(v1)[:500], version="100.0.1")
    assert s.kinds() == ["lost-write"]


def test_reads_from_checks_only_later_reads_against_the_whole_history():
    s = Script().put("k", 1, 2, "100.0.1", seq=1).put("k", 3, 4, "200.0.1", seq=2)
    s.get("k", 5, 6, seq=1, version="100.0.1")  # a lost write, read before t = 10
    s.get("k", 11, 12, seq=1, version="100.0.1")  # the same, read after
    assert len(checker.check(s.entries).violations) == 2
    later = checker.check(s.entries, reads_from=10)
    assert [v.kind for v in later.violations] == ["lost-write"]
    assert later.ops["get ok"] == 2  # the counts still cover every entry


def test_tail_parses_only_what_was_appended(tmp_path):
    from tests.chaos.history import History, Tail

    path = tmp_path / "h.jsonl"
    history = History(path)
    tail = Tail(path)
    history.mark(n=1)
    history.mark(n=2)
    assert [e["n"] for e in tail.update()] == [1, 2]
    assert tail.update() == []
    history.mark(n=3)
    with path.open("a") as f:
        f.write('{"type": "mark", "n": 4')  # a line still being written
    assert [e["n"] for e in tail.update()] == [3]
    with path.open("a") as f:
        f.write("}\n")
    assert [e["n"] for e in tail.update()] == [4]
    assert [e["n"] for e in tail.entries] == [1, 2, 3, 4]
    history.close()
