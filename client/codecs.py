"""Codecs: how the SDK turns application values into object bytes and back.

Owns the ``Codec`` seam, the four built-in codecs (``raw``, ``text``, ``json`` and the
opt-in ``pickle``) and ``CodecRegistry``, the per-client table that picks a codec for a
value, encodes it, and decodes stored bytes by the codec name recorded with the object.
It does no I/O and knows nothing of gRPC: the client's facades call it, the transport
carries the ``(codec name, bytes)`` pair it returns. ``docs/sdk-codecs.md`` is the
user-facing description.

Entry points: ``CodecRegistry`` (``choose``, ``encode``, ``decode``, ``register``),
``FunctionCodec`` for a codec made of two functions, ``validate_codec_name``.

Every failure is a ``cairn.CodecError`` (an ``InvalidArgument``, so a ``ValueError``);
refusing pickle is ``cairn.PickleRefused``. No bare ``UnicodeDecodeError``,
``json.JSONDecodeError`` or ``pickle.UnpicklingError`` ever escapes this module.
"""

from __future__ import annotations

import json

# The one place in cairn allowed to import pickle (ruff TID251 bans it elsewhere): the
# pickle codec below, reachable only through a registry built with allow_pickle=True.
import pickle  # noqa: TID251
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

from cairn.errors import CairnError, CodecError, PickleRefused

__all__ = [
    "BUILTIN_CODECS",
    "DEFAULT_REGISTRY",
    "MAX_CODEC_NAME_CHARS",
    "PICKLE_PROTOCOL",
    "Codec",
    "CodecRegistry",
    "FunctionCodec",
    "validate_codec_name",
]

MAX_CODEC_NAME_CHARS: Final = 64
"""A codec name is stored with every object's index entry: keep it short and plain."""

PICKLE_PROTOCOL: Final = 5
"""Pickle protocol 5 (PEP 574): readable by every Python cairn supports (3.8+)."""

BUILTIN_CODECS: Final = ("raw", "text", "json", "pickle")

_NAME_RE: Final = re.compile(rf"[a-z0-9._-]{{1,{MAX_CODEC_NAME_CHARS}}}")

_PICKLE_REFUSED_WHY: Final = (
    "pickle is disabled because unpickling data written by someone else runs arbitrary "
    "code on this machine; if every writer of this bucket is trusted, opt in with "
    "cairn.Client(..., allow_pickle=True), otherwise use codec='json' or a codec of "
    "your own (CodecRegistry.register)"
)


def validate_codec_name(name: object) -> str | None:
    """Return why ``name`` is not a valid codec name, or None if it is.

    A codec name is 1..64 ASCII characters from ``[a-z0-9._-]``.
    """
    if not isinstance(name, str):
        return f"a codec name must be a str, not {type(name).__name__}"
    if not _NAME_RE.fullmatch(name):
        return (
            f"codec name {name!r} is invalid: use 1..{MAX_CODEC_NAME_CHARS} characters "
            "from a-z, 0-9, '.', '_' and '-'"
        )
    return None


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back; registered in a ``CodecRegistry`` under ``name``.

    ``decode(encode(v))`` must give back a value equal to ``v`` for every value the codec
    accepts. The name is recorded with each object, so it must keep meaning the same byte
    format forever: a reader decodes the object with whatever codec *it* has registered
    under that name.

    Both methods may raise ``cairn.CodecError``; any other exception they raise is
    wrapped into one by the registry.
    """

    @property
    def name(self) -> str:
        """The codec's stable name (see ``validate_codec_name``)."""
        ...

    def encode(self, value: Any) -> bytes:
        """Return the bytes that represent ``value``."""
        ...

    def decode(self, data: bytes) -> Any:
        """Return the value that ``data`` represents."""
        ...


@dataclass(frozen=True, slots=True)
class FunctionCodec:
    """A codec made of two functions, e.g. ``FunctionCodec("msgpack", packb, unpackb)``.

    Attributes:
        name: the codec's stable name (see ``validate_codec_name``).
        encode: value -> bytes.
        decode: bytes -> value.
    """

    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]

    def __post_init__(self) -> None:
        why = validate_codec_name(self.name)
        if why is not None:
            raise CodecError(why, codec=self.name)
        if not callable(self.encode) or not callable(self.decode):
            raise CodecError(f"codec {self.name!r}: encode and decode must be callable")


def _type_name(value: object) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _utf8(codec: str, data: bytes) -> str:
    """Decode strict UTF-8, or raise a CodecError naming the codec and the bad offset."""
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"the {codec} codec cannot decode the stored bytes: not valid UTF-8 at byte "
            f"{exc.start} ({exc.reason})",
            codec=codec,
        ) from exc
    except TypeError as exc:  # not a bytes-like object
        raise CodecError(
            f"the {codec} codec decodes bytes, not {_type_name(data)}", codec=codec
        ) from exc


@dataclass(frozen=True, slots=True)
class _RawCodec:
    """Bytes stored as they are: bytes, bytearray or memoryview in, bytes out."""

    name: ClassVar[str] = "raw"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)  # no copy for bytes; a private copy of mutable buffers
        raise CodecError(
            f"the raw codec takes bytes, bytearray or memoryview, not {_type_name(value)}",
            codec=self.name,
            type=_type_name(value),
        )

    def decode(self, data: bytes) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):  # bytes(5) is 5 NULs
            raise CodecError(
                f"the raw codec decodes bytes, not {_type_name(data)}", codec=self.name
            )
        return bytes(data)


@dataclass(frozen=True, slots=True)
class _TextCodec:
    """A str stored as UTF-8 (strict: lone surrogates are refused, no BOM is added)."""

    name: ClassVar[str] = "text"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise CodecError(
                f"the text codec takes a str, not {_type_name(value)}",
                codec=self.name,
                type=_type_name(value),
            )
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CodecError(
                f"the text codec cannot encode this str as UTF-8: {exc.reason} at "
                f"index {exc.start}",
                codec=self.name,
                type="str",
            ) from exc

    def decode(self, data: bytes) -> str:
        return _utf8(self.name, data)


def _json_default(value: object) -> object:
    # json calls this for every value it cannot encode: name the type that failed.
    raise CodecError(
        f"the json codec cannot encode a value of type {_type_name(value)}; convert it "
        "to dict, list, str, int, float, bool or None, or use codec='pickle'",
        codec="json",
        type=_type_name(value),
    )


def _refuse_json_constant(token: str) -> object:
    raise CodecError(f"the json codec refuses {token}: it is not JSON (RFC 8259)", codec="json")


def _check_json_keys(value: object) -> None:
    """Refuse dict keys that are not str: json would silently turn them into strings.

    ``{1: "a"}`` would come back as ``{"1": "a"}``, so ``get`` would not return what
    ``put`` was given. Walks with an explicit stack (no recursion limit); nesting too
    deep for ``json`` itself is reported by ``json.dumps``.
    """
    stack: list[object] = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if id(item) in seen:  # a cycle; json.dumps reports it
                continue
            seen.add(id(item))
            for key, child in item.items():
                if not isinstance(key, str):
                    raise CodecError(
                        f"the json codec takes only str dict keys, not {_type_name(key)} "
                        f"({key!r}): JSON would turn it into a string and get() would "
                        "return a different dict",
                        codec="json",
                        type=_type_name(key),
                    )
                stack.append(child)
        elif isinstance(item, list | tuple):
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item)


@dataclass(frozen=True, slots=True)
class _JsonCodec:
    """JSON text in UTF-8 (RFC 8259): compact, keys in insertion order, non-ASCII as is.

    NaN and ±Infinity are refused both ways, since they are not JSON and other languages'
    parsers reject them. Dict keys must be str. Tuples are encoded as arrays and so come
    back as lists.
    """

    name: ClassVar[str] = "json"

    def encode(self, value: Any) -> bytes:
        _check_json_keys(value)
        try:
            text = json.dumps(
                value,
                separators=(",", ":"),
                ensure_ascii=False,
                sort_keys=False,
                allow_nan=False,
                default=_json_default,
            )
        except CodecError:
            raise
        except RecursionError as exc:
            raise CodecError(
                "the json codec cannot encode this value: it is nested too deeply",
                codec=self.name,
            ) from exc
        except ValueError as exc:  # NaN/Infinity, circular reference, int too long
            raise CodecError(
                f"the json codec cannot encode this value: {exc}", codec=self.name
            ) from exc
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in some str
            raise CodecError(
                f"the json codec cannot encode a str as UTF-8: {exc.reason}",
                codec=self.name,
                type="str",
            ) from exc

    def decode(self, data: bytes) -> Any:
        text = _utf8(self.name, data)
        try:
            return json.loads(text, parse_constant=_refuse_json_constant)
        except json.JSONDecodeError as exc:
            raise CodecError(
                f"the json codec cannot decode the stored bytes: {exc.msg} at line "
                f"{exc.lineno} column {exc.colno}",
                codec=self.name,
            ) from exc
        except RecursionError as exc:
            raise CodecError(
                "the json codec cannot decode the stored bytes: nested too deeply",
                codec=self.name,
            ) from exc
        except ValueError as exc:  # e.g. an integer literal past int's digit limit
            raise CodecError(
                f"the json codec cannot decode the stored bytes: {exc}", codec=self.name
            ) from exc


@dataclass(frozen=True, slots=True)
class _PickleCodec:
    """Any picklable object, pickle protocol 5. Reachable only through a registry
    built with ``allow_pickle=True``: the registry refuses the name ``pickle`` otherwise.
    """

    name: ClassVar[str] = "pickle"

    def encode(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
            raise CodecError(
                f"the pickle codec cannot encode a value of type {_type_name(value)}: {exc}",
                codec=self.name,
                type=_type_name(value),
            ) from exc
        except RecursionError as exc:
            raise CodecError(
                "the pickle codec cannot encode this value: it is nested too deeply",
                codec=self.name,
                type=_type_name(value),
            ) from exc

    def decode(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except (CairnError, MemoryError):
            raise
        # Broad on purpose: unpickling runs the stored data's own code (imports,
        # __reduce__, __setstate__), which can fail with any exception type.
        except Exception as exc:
            raise CodecError(
                f"the pickle codec cannot decode the stored bytes: {type(exc).__name__}: {exc}",
                codec=self.name,
            ) from exc


_BUILTINS: Final[tuple[Codec, ...]] = (_RawCodec(), _TextCodec(), _JsonCodec(), _PickleCodec())


class CodecRegistry:
    """The codecs one client knows, by name; starts with the four built-ins.

    One registry per client (``cairn.Client`` builds its own from ``allow_pickle`` and
    any extra codecs). ``put`` calls ``encode`` and sends the returned codec name with the
    bytes; ``get`` calls ``decode`` with the name stored with the object.

    Args:
        allow_pickle: let the ``pickle`` codec encode and decode. Off by default, because
            unpickling data from others runs arbitrary code.
        codecs: extra codecs to register (same rules as ``register`` without replace).

    Raises:
        CodecError: a codec in ``codecs`` is invalid or clashes with a known name.
    """

    def __init__(self, *, allow_pickle: bool = False, codecs: Iterable[Codec] = ()) -> None:
        self._allow_pickle = bool(allow_pickle)
        self._lock = threading.Lock()  # serializes register(); readers take no lock
        self._codecs: dict[str, Codec] = {c.name: c for c in _BUILTINS}
        for codec in codecs:
            self.register(codec)

    @property
    def allow_pickle(self) -> bool:
        """Whether the ``pickle`` codec may be used."""
        return self._allow_pickle

    def names(self) -> tuple[str, ...]:
        """All registered codec names, sorted (``pickle`` included even when refused)."""
        return tuple(sorted(self._codecs))

    def __contains__(self, name: object) -> bool:
        return name in self._codecs

    def __repr__(self) -> str:
        return f"CodecRegistry(names={self.names()!r}, allow_pickle={self._allow_pickle})"

    def register(self, codec: Codec, *, replace: bool = False) -> None:
        """Add ``codec`` under ``codec.name``.

        Args:
            codec: any object with ``name``, ``encode`` and ``decode`` (see ``Codec``).
            replace: allow replacing a codec already registered under that name,
                built-ins included. The replacement must read and write the same byte
                format, since objects already stored under the name will be decoded by it.

        Raises:
            CodecError: ``codec`` lacks ``name``/``encode``/``decode``, its name is
                invalid, or the name is taken and ``replace`` is False.
        """
        if not isinstance(codec, Codec) or not (callable(codec.encode) and callable(codec.decode)):
            raise CodecError(
                f"a codec needs a name and callable encode and decode, got {_type_name(codec)}"
            )
        name = codec.name
        why = validate_codec_name(name)
        if why is not None:
            raise CodecError(why, codec=name)
        with self._lock:
            if name in self._codecs and not replace:
                kind = "a built-in" if name in BUILTIN_CODECS else "an already registered"
                raise CodecError(
                    f"{name!r} is {kind} codec; pass replace=True to replace it (only with "
                    "a codec that reads and writes the same bytes), or pick another name",
                    codec=name,
                )
            # Copy on write: readers (get, names) never see a dict change under them.
            self._codecs = {**self._codecs, name: codec}

    def get(self, name: str) -> Codec:
        """Return the codec registered under ``name``.

        Raises:
            PickleRefused: ``name`` is ``pickle`` and this registry does not allow it.
            CodecError: no codec is registered under ``name``.
        """
        codec = self._codecs.get(name) if isinstance(name, str) else None
        if codec is None:
            if not isinstance(name, str):
                raise CodecError(
                    f"codec must be a codec name (str), not {_type_name(name)}; known "
                    f"codecs: {', '.join(self.names())}"
                )
            raise CodecError(
                f"unknown codec {name!r}; known codecs: {', '.join(self.names())}. A "
                "codec of your own must be registered (CodecRegistry.register, or "
                "cairn.Client(..., codecs=[...])) in every client that reads or writes it",
                codec=name,
            )
        if name == "pickle" and not self._allow_pickle:
            raise PickleRefused(_PICKLE_REFUSED_WHY, codec=name)
        return codec

    def choose(self, value: object, codec: str | None = None) -> Codec:
        """Pick the codec for ``value``: the one named, else raw for bytes, text for str.

        Raises:
            CodecError: ``codec`` is None and ``value`` is neither bytes-like nor str, or
                ``codec`` names no registered codec.
            PickleRefused: ``codec`` is ``pickle`` and this registry does not allow it.
        """
        if codec is not None:
            return self.get(codec)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.get("raw")
        if isinstance(value, str):
            return self.get("text")
        raise CodecError(
            f"cairn stores bytes and str as they are, but this value is a "
            f"{_type_name(value)}: pass codec='json' (dicts, lists, numbers, bools, None) "
            "or codec='pickle' (any Python object; needs cairn.Client(..., "
            "allow_pickle=True))",
            type=_type_name(value),
        )

    def encode(self, value: object, codec: str | None = None) -> tuple[str, bytes]:
        """Encode ``value``; return the codec name to record with the object and its bytes.

        Raises:
            CodecError: no codec fits (see ``choose``), or the codec cannot encode
                ``value`` (the message names the codec and the type that failed).
            PickleRefused: pickle was asked for and this registry does not allow it.
        """
        chosen = self.choose(value, codec)
        try:
            data = chosen.encode(value)
        except (CairnError, MemoryError):
            raise
        except Exception as exc:  # a user codec's own error: say which codec failed
            raise CodecError(
                f"codec {chosen.name!r} failed to encode a value of type "
                f"{_type_name(value)}: {type(exc).__name__}: {exc}",
                codec=chosen.name,
                type=_type_name(value),
            ) from exc
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise CodecError(
                f"codec {chosen.name!r} returned {_type_name(data)}, not bytes",
                codec=chosen.name,
            )
        return chosen.name, data

    def decode(self, name: str, data: bytes) -> object:
        """Decode the bytes of an object stored with codec ``name`` (``""`` means raw).

        Raises:
            CodecError: ``name`` is unknown here, or ``data`` is not valid for that codec
                (the message names the codec).
            PickleRefused: the object was stored with pickle and this registry does not
                allow it.
        """
        # proto/cairn/v1/object.proto: an empty codec name in a Put means "raw" (e.g. an
        # object written by a tool that sends bytes only), so it decodes as raw here too.
        codec = self.get(name or "raw") if isinstance(name, str) else self.get(name)
        try:
            return codec.decode(data)
        except (CairnError, MemoryError):
            raise
        except Exception as exc:  # a user codec's own error: say which codec failed
            raise CodecError(
                f"codec {codec.name!r} failed to decode the stored bytes: "
                f"{type(exc).__name__}: {exc}",
                codec=codec.name,
            ) from exc


class _ReadOnlyRegistry(CodecRegistry):
    """The shared module default: the built-ins, pickle refused, nothing can be added."""

    def register(self, codec: Codec, *, replace: bool = False) -> None:
        raise CodecError(
            "cairn.codecs.DEFAULT_REGISTRY is shared and read-only; build your own "
            "CodecRegistry(...) or pass codecs=[...] to cairn.Client"
        )


DEFAULT_REGISTRY: Final[CodecRegistry] = _ReadOnlyRegistry()
"""The built-in codecs with pickle refused, for code that has no client at hand."""
