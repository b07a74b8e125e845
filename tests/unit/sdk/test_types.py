from __future__ import annotations

import pytest

from cairn.types import Version, validate_bucket, validate_key

pytestmark = pytest.mark.unit


def test_version_orders_by_time_then_counter_then_node():
    assert Version(1, 0, 9) < Version(1, 1, 0) < Version(2, 0, 0)
    assert Version(5, 3, 1) < Version(5, 3, 2)
    assert Version.parse(str(Version(17, 4, 2))) == Version(17, 4, 2)
    with pytest.raises(ValueError, match="not a version"):
        Version.parse("1.2")


@pytest.mark.parametrize("name", ["app", "my-bucket.v2", "a" * 63, "123abc"])
def test_valid_buckets(name):
    assert validate_bucket(name) is None


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "App", "-app", "app-", "a..b", "a.-b", "192.168.1.1", "a_b", ""]
)
def test_invalid_buckets(name):
    assert validate_bucket(name)


def test_keys():
    assert validate_key("ключ/🙂".encode()) is None
    assert validate_key(b"") == "key must not be empty"
    assert "NUL" in validate_key(b"a\x00b")
    assert "UTF-8" in validate_key(b"\xff")
    assert "limit" in validate_key(b"k" * 1025)
    assert validate_key(b"k" * 1024) is None
