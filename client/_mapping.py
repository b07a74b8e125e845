"""``client.bucket(name)``: one bucket seen as a mapping from keys to values.

Like ``shelve`` over the cluster: ``Bucket`` is a ``MutableMapping[str, Any]`` over a
``Client``; ``AsyncBucket`` offers the same operations as coroutines over an
``AsyncClient`` (a mapping's dunder methods cannot await). Each operation is one or two
calls of the client: nothing is cached, so the mapping always shows the cluster as it is.

Values are stored with the client's codec choice: bytes as ``raw``, ``str`` as
``text``, anything else with the mapping's ``codec`` (``json`` unless given).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from cairn._core import check_bucket, shelf_codec
from cairn.errors import BucketNotFound, NotFound

if TYPE_CHECKING:
    from cairn._async_client import AsyncClient
    from cairn._client import Client

__all__ = ["DEFAULT_SHELF_CODEC", "AsyncBucket", "Bucket"]

DEFAULT_SHELF_CODEC: Final = "json"
"""What the mapping stores values that are neither bytes nor str with."""


class Bucket(MutableMapping[str, Any]):
    """A bucket as a ``MutableMapping``: ``shelf[key] = value``, ``shelf[key]``,
    ``del shelf[key]``, ``key in shelf``, ``for key in shelf``, ``len(shelf)``.

    A missing key raises ``cairn.NotFound``, which is a ``KeyError``. A missing bucket
    raises ``cairn.BucketNotFound`` (also a ``KeyError``); ``get`` and ``in`` let it
    through instead of answering "absent", since every key of that bucket would be.

    ``len`` and iteration list the bucket (one call per 1000 keys). ``del`` looks the
    key up first, because deleting a missing object succeeds on the node.
    """

    def __init__(self, client: Client, name: str, *, codec: str = DEFAULT_SHELF_CODEC) -> None:
        check_bucket(name)
        client.codecs.get(codec)  # an unknown codec or refused pickle fails here, not later
        self._client = client
        self._name = name
        self._codec = codec

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<cairn.Bucket {self._name!r} codec={self._codec!r}>"

    def __getitem__(self, key: str) -> Any:
        return self._client.get(self._name, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._client.put(self._name, key, value, codec=shelf_codec(value, self._codec))

    def __delitem__(self, key: str) -> None:
        self._client.head(self._name, key)  # NotFound (a KeyError) when it is missing
        self._client.delete(self._name, key)

    def __iter__(self) -> Iterator[str]:
        return (info.key for info in self._client.list(self._name))

    def __len__(self) -> int:
        return sum(1 for _ in self._client.list(self._name))

    def __contains__(self, key: object) -> bool:
        try:
            self._client.head(self._name, key)  # type: ignore[arg-type]
        except BucketNotFound:
            raise
        except NotFound:
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._client.get(self._name, key)
        except BucketNotFound:
            raise
        except NotFound:
            return default


class AsyncBucket:
    """The coroutine twin of ``Bucket``, over an ``AsyncClient``.

    ``await shelf.set(key, value)``, ``await shelf.get(key, default)``,
    ``await shelf.delete(key)``, ``await shelf.contains(key)``, ``await shelf.count()``,
    ``async for key in shelf``, ``async for key, value in shelf.items()``.
    """

    def __init__(
        self, client: AsyncClient, name: str, *, codec: str = DEFAULT_SHELF_CODEC
    ) -> None:
        check_bucket(name)
        client.codecs.get(codec)
        self._client = client
        self._name = name
        self._codec = codec

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<cairn.AsyncBucket {self._name!r} codec={self._codec!r}>"

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` if there is none.

        Raises:
            BucketNotFound: the bucket does not exist.
        """
        try:
            return await self._client.get(self._name, key)
        except BucketNotFound:
            raise
        except NotFound:
            return default

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (see the class docstring for the codec)."""
        await self._client.put(self._name, key, value, codec=shelf_codec(value, self._codec))

    async def delete(self, key: str) -> None:
        """Remove ``key``.

        Raises:
            NotFound: there is no such key (a ``KeyError``, like ``del mapping[key]``).
        """
        await self._client.head(self._name, key)
        await self._client.delete(self._name, key)

    async def contains(self, key: str) -> bool:
        try:
            await self._client.head(self._name, key)
        except BucketNotFound:
            raise
        except NotFound:
            return False
        return True

    async def count(self) -> int:
        """How many keys the bucket holds (lists it)."""
        n = 0
        async for _ in self._client.list(self._name):
            n += 1
        return n

    async def keys(self) -> AsyncIterator[str]:
        async for info in self._client.list(self._name):
            yield info.key

    def __aiter__(self) -> AsyncIterator[str]:
        return self.keys()

    async def items(self) -> AsyncIterator[tuple[str, Any]]:
        """``(key, value)`` pairs; a key deleted while listing is skipped."""
        async for info in self._client.list(self._name):
            try:
                value = await self._client.get(self._name, info.key)
            except BucketNotFound:
                raise
            except NotFound:
                continue
            yield info.key, value
