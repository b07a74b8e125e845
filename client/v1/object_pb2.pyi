from cairn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BucketInfo(_message.Message):
    __slots__ = ("name", "created_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    created_ms: int
    def __init__(self, name: _Optional[bytes] = ..., created_ms: _Optional[int] = ...) -> None: ...

class CreateBucketRequest(_message.Message):
    __slots__ = ("header", "bucket")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ...) -> None: ...

class CreateBucketResponse(_message.Message):
    __slots__ = ("header", "info")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    info: BucketInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., info: _Optional[_Union[BucketInfo, _Mapping]] = ...) -> None: ...

class DeleteBucketRequest(_message.Message):
    __slots__ = ("header", "bucket")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ...) -> None: ...

class DeleteBucketResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class ListBucketsRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ...) -> None: ...

class ListBucketsResponse(_message.Message):
    __slots__ = ("header", "buckets")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    buckets: _containers.RepeatedCompositeFieldContainer[BucketInfo]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[BucketInfo, _Mapping]]] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("header", "chunk", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: PutHeader
    chunk: bytes
    end: PutEnd
    def __init__(self, header: _Optional[_Union[PutHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[PutEnd, _Mapping]] = ...) -> None: ...

class PutHeader(_message.Message):
    __slots__ = ("request", "bucket", "key", "codec", "metadata", "size")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    request: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    codec: str
    metadata: _containers.ScalarMap[str, str]
    size: int
    def __init__(self, request: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., codec: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., size: _Optional[int] = ...) -> None: ...

class PutEnd(_message.Message):
    __slots__ = ("size", "checksum")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    size: int
    checksum: int
    def __init__(self, size: _Optional[int] = ..., checksum: _Optional[int] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("header", "info")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    info: _common_pb2.ObjectInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("header", "bucket", "key", "range_start", "range_end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_START_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    range_start: int
    range_end: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., range_start: _Optional[int] = ..., range_end: _Optional[int] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("header", "chunk", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: GetHeader
    chunk: bytes
    end: GetEnd
    def __init__(self, header: _Optional[_Union[GetHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[GetEnd, _Mapping]] = ...) -> None: ...

class GetHeader(_message.Message):
    __slots__ = ("response", "info", "range_start", "range_end")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    RANGE_START_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    response: _common_pb2.ResponseHeader
    info: _common_pb2.ObjectInfo
    range_start: int
    range_end: int
    def __init__(self, response: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ..., range_start: _Optional[int] = ..., range_end: _Optional[int] = ...) -> None: ...

class GetEnd(_message.Message):
    __slots__ = ("checksum",)
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    checksum: int
    def __init__(self, checksum: _Optional[int] = ...) -> None: ...

class HeadRequest(_message.Message):
    __slots__ = ("header", "bucket", "key")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class HeadResponse(_message.Message):
    __slots__ = ("header", "info")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    info: _common_pb2.ObjectInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("header", "bucket", "key")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("header", "version")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    version: _common_pb2.Version
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., version: _Optional[_Union[_common_pb2.Version, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("header", "bucket", "prefix", "start_after", "page_token", "limit", "include_deleted")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    prefix: bytes
    start_after: bytes
    page_token: bytes
    limit: int
    include_deleted: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., prefix: _Optional[bytes] = ..., start_after: _Optional[bytes] = ..., page_token: _Optional[bytes] = ..., limit: _Optional[int] = ..., include_deleted: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("header", "objects", "next_page_token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    objects: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectInfo]
    next_page_token: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[_common_pb2.ObjectInfo, _Mapping]]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class PutSmallRequest(_message.Message):
    __slots__ = ("header", "value", "checksum")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    header: PutHeader
    value: bytes
    checksum: int
    def __init__(self, header: _Optional[_Union[PutHeader, _Mapping]] = ..., value: _Optional[bytes] = ..., checksum: _Optional[int] = ...) -> None: ...

class GetSmallRequest(_message.Message):
    __slots__ = ("header", "bucket", "key", "max_bytes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    max_bytes: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class GetSmallResponse(_message.Message):
    __slots__ = ("header", "info", "value", "too_large")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TOO_LARGE_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    info: _common_pb2.ObjectInfo
    value: bytes
    too_large: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ..., value: _Optional[bytes] = ..., too_large: _Optional[bool] = ...) -> None: ...
