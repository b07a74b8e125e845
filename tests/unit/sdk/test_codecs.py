"""cairn.codecs: round trips, codec choice, registry rules, and pickle's opt-in."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cairn
from cairn.codecs import (
    BUILTIN_CODECS,
    DEFAULT_REGISTRY,
    MAX_CODEC_NAME_CHARS,
    Codec,
    CodecRegistry,
    FunctionCodec,
    validate_codec_name,
)
from cairn.errors import CodecError, InvalidArgument, PickleRefused

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@dataclasses.dataclass
class Point:  # module level, so pickle can find it
    x: int
    y: list[int]


class Rot13:
    """A user codec written as a class (the Codec protocol, structurally)."""

    name = "rot13"

    def encode(self, value: str) -> bytes:
        return value.translate(_ROT13).encode("ascii")

    def decode(self, data: bytes) -> str:
        return data.decode("ascii").translate(_ROT13)


_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM",
)


# --- round trips -------------------------------------------------------------------


@given(st.binary())
def test_raw_round_trip(data):
    reg = CodecRegistry()
    for value in (data, bytearray(data), memoryview(data)):
        name, stored = reg.encode(value)
        assert (name, stored) == ("raw", data)
        assert type(stored) is bytes
        out = reg.decode(name, stored)
        assert out == data
        assert type(out) is bytes


@given(st.text())
def test_text_round_trip(text):
    reg = CodecRegistry()
    name, stored = reg.encode(text)
    assert (name, stored) == ("text", text.encode("utf-8"))
    assert reg.decode(name, stored) == text


@given(json_values)
def test_json_round_trip(value):
    reg = CodecRegistry()
    name, stored = reg.encode(value, "json")
    assert name == "json"
    assert json.loads(stored.decode("utf-8")) == value  # plain JSON any reader can parse
    assert reg.decode(name, stored) == value


def test_json_is_compact_utf8_in_insertion_order():
    _, stored = CodecRegistry().encode({"z": 1, "a": ["é", None, True]}, "json")
    assert stored == '{"z":1,"a":["é",null,true]}'.encode()


def test_json_tuples_come_back_as_lists():
    reg = CodecRegistry()
    assert reg.decode(*reg.encode({"t": (1, 2)}, "json")) == {"t": [1, 2]}


def test_pickle_round_trip_when_allowed():
    reg = CodecRegistry(allow_pickle=True)
    value = {"p": Point(1, [2, 3]), "s": {1, 2}, "c": 1 + 2j}
    name, stored = reg.encode(value, "pickle")
    assert name == "pickle"
    assert stored[:2] == b"\x80\x05"  # protocol 5
    assert reg.decode(name, stored) == value


def test_empty_codec_name_decodes_as_raw():
    # object.proto: an empty codec in a Put means "raw"; encode never returns "".
    assert CodecRegistry().decode("", b"\x00x") == b"\x00x"
    with pytest.raises(CodecError, match="codec name"):
        FunctionCodec("", bytes, bytes)


def test_decode_accepts_any_bytes_like():
    reg = CodecRegistry()
    assert reg.decode("raw", memoryview(b"ab")) == b"ab"
    assert reg.decode("text", bytearray("ö".encode())) == "ö"
    assert reg.decode("json", memoryview(b"[1]")) == [1]


# --- choosing a codec --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"x", "raw"), (bytearray(b"x"), "raw"), (memoryview(b"x"), "raw"), ("x", "text")],
)
def test_choose_by_type(value, expected):
    assert CodecRegistry().choose(value).name == expected


@pytest.mark.parametrize("value", [{"a": 1}, [1], 3, 1.5, True, None, Point(1, [])])
def test_choose_refuses_other_types_and_says_what_to_pass(value):
    with pytest.raises(CodecError) as info:
        CodecRegistry().choose(value)
    message = str(info.value)
    assert "codec='json'" in message
    assert "codec='pickle'" in message
    assert type(value).__name__ in message


def test_explicit_codec_wins_over_the_type():
    reg = CodecRegistry()
    assert reg.encode("hi", "json") == ("json", b'"hi"')


# --- errors ------------------------------------------------------------------------


def test_unknown_codec_lists_the_known_ones():
    reg = CodecRegistry()
    for call in (lambda: reg.get("msgpack"), lambda: reg.decode("msgpack", b"")):
        with pytest.raises(CodecError, match="unknown codec 'msgpack'") as info:
            call()
        for name in BUILTIN_CODECS:
            assert name in str(info.value)
        assert info.value.details["codec"] == "msgpack"


def test_codec_must_be_a_name():
    with pytest.raises(CodecError, match="codec name"):
        CodecRegistry().encode(b"x", json)  # the module, by mistake


def test_codec_errors_are_invalid_arguments_and_value_errors():
    with pytest.raises(InvalidArgument):
        CodecRegistry().get("nope")
    with pytest.raises(ValueError, match="unknown codec"):
        CodecRegistry().get("nope")


@pytest.mark.parametrize(
    ("codec", "value", "type_name"),
    [
        ("raw", "text", "str"),
        ("raw", 5, "int"),
        ("text", b"bytes", "bytes"),
        ("json", {"s": {1, 2}}, "set"),
        ("json", [Point(1, [])], "test_codecs.Point"),
        ("json", {1: "a"}, "int"),
        ("json", [{"ok": {(1, 2): 3}}], "tuple"),
    ],
)
def test_encode_errors_name_codec_and_type(codec, value, type_name):
    with pytest.raises(CodecError) as info:
        CodecRegistry().encode(value, codec)
    assert codec in str(info.value)
    assert type_name in str(info.value)
    assert info.value.details["codec"] == codec
    assert info.value.details["type"].endswith(type_name)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_refuses_nan_and_infinity(bad):
    with pytest.raises(CodecError, match="json"):
        CodecRegistry().encode({"x": [bad]}, "json")


@pytest.mark.parametrize("stored", [b"NaN", b"[Infinity]", b'{"a":-Infinity}'])
def test_json_decode_refuses_nan_and_infinity(stored):
    with pytest.raises(CodecError, match="refuses"):
        CodecRegistry().decode("json", stored)


def test_json_refuses_circular_and_too_deep_values():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="json"):
        CodecRegistry().encode(loop, "json")
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CodecError, match="json"):
        CodecRegistry().encode(deep, "json")


@pytest.mark.parametrize("value", ["\ud800", {"k": "\udfff"}, {"\ud800": 1}])
def test_lone_surrogates_are_codec_errors(value):
    codec = "text" if isinstance(value, str) else "json"
    with pytest.raises(CodecError, match=codec):
        CodecRegistry().encode(value, codec)


@pytest.mark.parametrize(
    ("codec", "stored", "match"),
    [
        ("text", b"ok\xff", "text codec cannot decode .*UTF-8 at byte 2"),
        ("json", b'"\xc3"', "json codec cannot decode .*UTF-8"),
        ("json", b'{"a":', "json codec cannot decode"),
        ("json", b"", "json codec cannot decode"),
        ("json", "\ufeff1".encode(), "json codec cannot decode"),
        ("json", "[1]".encode("utf-16"), "json codec cannot decode"),
    ],
)
def test_bad_stored_bytes_raise_codec_errors_naming_the_codec(codec, stored, match):
    with pytest.raises(CodecError, match=match) as info:
        CodecRegistry().decode(codec, stored)
    assert info.value.details["codec"] == codec
    assert not isinstance(info.value, UnicodeError)


@pytest.mark.parametrize("codec", ["raw", "text", "json"])
def test_decode_refuses_what_is_not_bytes(codec):
    with pytest.raises(CodecError, match=f"{codec} codec decodes bytes, not int"):
        CodecRegistry().decode(codec, 5)


def test_bad_pickle_raises_codec_error():
    reg = CodecRegistry(allow_pickle=True)
    for stored in (b"", b"\x80\x05garbage", b"\x80\x05\x95\x00"):
        with pytest.raises(CodecError, match="pickle codec cannot decode"):
            reg.decode("pickle", stored)


def test_unpicklable_value_raises_codec_error():
    with pytest.raises(CodecError, match="pickle codec cannot encode") as info:
        CodecRegistry(allow_pickle=True).encode(lambda: None, "pickle")
    assert "function" in str(info.value)


# --- pickle is opt-in --------------------------------------------------------------


def test_pickle_refused_both_ways_without_opt_in():
    stored = CodecRegistry(allow_pickle=True).encode([1, 2], "pickle")[1]
    reg = CodecRegistry()
    assert not reg.allow_pickle
    calls = (
        lambda: reg.encode([1, 2], "pickle"),
        lambda: reg.decode("pickle", stored),
        lambda: reg.get("pickle"),
        lambda: DEFAULT_REGISTRY.decode("pickle", stored),
    )
    for call in calls:
        with pytest.raises(PickleRefused) as info:
            call()
        message = str(info.value)
        assert "arbitrary code" in message
        assert "allow_pickle=True" in message
        assert isinstance(info.value, CodecError)


def test_pickle_refusal_holds_for_a_replacement_pickle_codec():
    reg = CodecRegistry()
    reg.register(FunctionCodec("pickle", bytes, bytes), replace=True)
    with pytest.raises(PickleRefused):
        reg.decode("pickle", b"x")


def test_pickle_is_listed_even_when_refused():
    assert "pickle" in CodecRegistry().names()


# --- user codecs -------------------------------------------------------------------


def test_user_codec_class_round_trips():
    reg = CodecRegistry()
    reg.register(Rot13())
    assert isinstance(Rot13(), Codec)
    assert reg.encode("Hello", "rot13") == ("rot13", b"Uryyb")
    assert reg.decode("rot13", b"Uryyb") == "Hello"
    assert "rot13" in reg
    assert "rot13" not in CodecRegistry()  # registries are per client


def test_function_codec_and_constructor_codecs():
    upper = FunctionCodec("upper.v1", lambda v: v.upper().encode(), lambda d: d.decode())
    reg = CodecRegistry(codecs=[upper])
    assert reg.decode(*reg.encode("abc", "upper.v1")) == "ABC"


@pytest.mark.parametrize("name", BUILTIN_CODECS)
def test_builtins_cannot_be_replaced_silently(name):
    reg = CodecRegistry()
    before = reg.get("raw")
    with pytest.raises(CodecError, match=r"built-in.*replace=True"):
        reg.register(FunctionCodec(name, bytes, bytes))
    with pytest.raises(CodecError, match="built-in"):
        CodecRegistry(codecs=[FunctionCodec(name, bytes, bytes)])
    assert reg.get("raw") is before


def test_replace_true_replaces():
    reg = CodecRegistry()
    mine = FunctionCodec("json", lambda v: json.dumps(v).encode(), json.loads)
    reg.register(mine, replace=True)
    assert reg.get("json") is mine
    reg.register(Rot13())
    with pytest.raises(CodecError, match="already registered"):
        reg.register(Rot13())


@pytest.mark.parametrize(
    "name", ["", "JSON", "my codec", "é", "a/b", "x" * (MAX_CODEC_NAME_CHARS + 1), "a\n"]
)
def test_invalid_codec_names(name):
    assert validate_codec_name(name)
    with pytest.raises(CodecError, match="codec name"):
        FunctionCodec(name, bytes, bytes)


@pytest.mark.parametrize(
    "name", ["a", "msgpack", "zstd-json.v2", "x_1", "x" * MAX_CODEC_NAME_CHARS]
)
def test_valid_codec_names(name):
    assert validate_codec_name(name) is None


def test_register_checks_the_shape():
    class NoName:
        def encode(self, value):
            return b""

        def decode(self, data):
            return data

    class BadName(Rot13):
        name = "Bad Name"

    reg = CodecRegistry()
    with pytest.raises(CodecError, match="needs a name"):
        reg.register(NoName())
    with pytest.raises(CodecError, match="codec name"):
        reg.register(BadName())


def test_user_codec_failures_become_codec_errors():
    def boom(_):
        raise RuntimeError("kaput")

    reg = CodecRegistry(
        codecs=[FunctionCodec("boom", boom, boom), FunctionCodec("str", lambda v: v, bytes)]
    )
    with pytest.raises(CodecError, match=r"'boom' failed to encode.*kaput") as info:
        reg.encode(1, "boom")
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(CodecError, match=r"'boom' failed to decode.*kaput"):
        reg.decode("boom", b"")
    with pytest.raises(CodecError, match="returned str, not bytes"):
        reg.encode("oops", "str")


def test_default_registry_is_read_only():
    with pytest.raises(CodecError, match="read-only"):
        DEFAULT_REGISTRY.register(Rot13())
    assert DEFAULT_REGISTRY.decode(*DEFAULT_REGISTRY.encode(b"x")) == b"x"
    assert not DEFAULT_REGISTRY.allow_pickle


def test_codec_errors_are_reexported_from_cairn():
    assert cairn.CodecError is CodecError
    assert cairn.PickleRefused is PickleRefused
