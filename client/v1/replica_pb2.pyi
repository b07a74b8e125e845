from cairn.v1 import common_pb2 as _common_pb2
from cairn.v1 import object_pb2 as _object_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplicaObject(_message.Message):
    __slots__ = ("bucket", "key", "version", "partition", "codec", "metadata", "size", "checksum", "modified_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_MS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    version: _common_pb2.Version
    partition: int
    codec: str
    metadata: _containers.ScalarMap[str, str]
    size: int
    checksum: int
    modified_ms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., version: _Optional[_Union[_common_pb2.Version, _Mapping]] = ..., partition: _Optional[int] = ..., codec: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., size: _Optional[int] = ..., checksum: _Optional[int] = ..., modified_ms: _Optional[int] = ...) -> None: ...

class ReplicaTombstone(_message.Message):
    __slots__ = ("bucket", "key", "version", "partition", "modified_ms")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_MS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    version: _common_pb2.Version
    partition: int
    modified_ms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., version: _Optional[_Union[_common_pb2.Version, _Mapping]] = ..., partition: _Optional[int] = ..., modified_ms: _Optional[int] = ...) -> None: ...

class ReplicaPutRequest(_message.Message):
    __slots__ = ("header", "chunk", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: ReplicaPutHeader
    chunk: bytes
    end: _object_pb2.PutEnd
    def __init__(self, header: _Optional[_Union[ReplicaPutHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[_object_pb2.PutEnd, _Mapping]] = ...) -> None: ...

class ReplicaPutHeader(_message.Message):
    __slots__ = ("request", "object")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    request: _common_pb2.RequestHeader
    object: ReplicaObject
    def __init__(self, request: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., object: _Optional[_Union[ReplicaObject, _Mapping]] = ...) -> None: ...

class ReplicaPutResponse(_message.Message):
    __slots__ = ("header", "applied", "current")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    applied: bool
    current: _common_pb2.Version
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., current: _Optional[_Union[_common_pb2.Version, _Mapping]] = ...) -> None: ...

class ReplicaDeleteRequest(_message.Message):
    __slots__ = ("header", "tombstone")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    tombstone: ReplicaTombstone
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., tombstone: _Optional[_Union[ReplicaTombstone, _Mapping]] = ...) -> None: ...

class ReplicaDeleteResponse(_message.Message):
    __slots__ = ("header", "applied", "current")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    applied: bool
    current: _common_pb2.Version
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., current: _Optional[_Union[_common_pb2.Version, _Mapping]] = ...) -> None: ...

class ReplicaHeadRequest(_message.Message):
    __slots__ = ("header", "bucket", "key")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class ReplicaHeadResponse(_message.Message):
    __slots__ = ("header", "found", "info")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    found: bool
    info: _common_pb2.ObjectInfo
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., found: _Optional[bool] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ...) -> None: ...

class ReplicaGetRequest(_message.Message):
    __slots__ = ("header", "bucket", "key", "range_start", "range_end", "version")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_START_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    key: bytes
    range_start: int
    range_end: int
    version: _common_pb2.Version
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., range_start: _Optional[int] = ..., range_end: _Optional[int] = ..., version: _Optional[_Union[_common_pb2.Version, _Mapping]] = ...) -> None: ...

class ReplicateRequest(_message.Message):
    __slots__ = ("seq", "header", "put", "delete", "head", "batch")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    header: _common_pb2.RequestHeader
    put: ReplicaWrite
    delete: ReplicaTombstone
    head: ReplicateHead
    batch: _containers.RepeatedCompositeFieldContainer[ReplicateRequest]
    def __init__(self, seq: _Optional[int] = ..., header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., put: _Optional[_Union[ReplicaWrite, _Mapping]] = ..., delete: _Optional[_Union[ReplicaTombstone, _Mapping]] = ..., head: _Optional[_Union[ReplicateHead, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[ReplicateRequest, _Mapping]]] = ...) -> None: ...

class ReplicateHead(_message.Message):
    __slots__ = ("bucket", "key")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class ReplicaWrite(_message.Message):
    __slots__ = ("object", "value")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    object: ReplicaObject
    value: bytes
    def __init__(self, object: _Optional[_Union[ReplicaObject, _Mapping]] = ..., value: _Optional[bytes] = ...) -> None: ...

class ReplicateResponse(_message.Message):
    __slots__ = ("seq", "header", "applied", "current", "error", "batch", "found", "info")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    seq: int
    header: _common_pb2.ResponseHeader
    applied: bool
    current: _common_pb2.Version
    error: _common_pb2.Error
    batch: _containers.RepeatedCompositeFieldContainer[ReplicateResponse]
    found: bool
    info: _common_pb2.ObjectInfo
    def __init__(self, seq: _Optional[int] = ..., header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., applied: _Optional[bool] = ..., current: _Optional[_Union[_common_pb2.Version, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[ReplicateResponse, _Mapping]]] = ..., found: _Optional[bool] = ..., info: _Optional[_Union[_common_pb2.ObjectInfo, _Mapping]] = ...) -> None: ...

class ListPartitionRequest(_message.Message):
    __slots__ = ("header", "partition", "start_after_bucket", "start_after_key", "batch_size", "leaves", "leaf_count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_BUCKET_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_KEY_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    LEAF_COUNT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    partition: int
    start_after_bucket: bytes
    start_after_key: bytes
    batch_size: int
    leaves: _containers.RepeatedScalarFieldContainer[int]
    leaf_count: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., partition: _Optional[int] = ..., start_after_bucket: _Optional[bytes] = ..., start_after_key: _Optional[bytes] = ..., batch_size: _Optional[int] = ..., leaves: _Optional[_Iterable[int]] = ..., leaf_count: _Optional[int] = ...) -> None: ...

class ListPartitionResponse(_message.Message):
    __slots__ = ("header", "objects")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    objects: _containers.RepeatedCompositeFieldContainer[_common_pb2.ObjectInfo]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[_common_pb2.ObjectInfo, _Mapping]]] = ...) -> None: ...

class ReplicaListRequest(_message.Message):
    __slots__ = ("header", "bucket", "prefix", "start_after", "limit")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    prefix: bytes
    start_after: bytes
    limit: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., prefix: _Optional[bytes] = ..., start_after: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class ReplicaBucketRequest(_message.Message):
    __slots__ = ("header", "bucket", "delete", "created_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    bucket: bytes
    delete: bool
    created_ms: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., bucket: _Optional[bytes] = ..., delete: _Optional[bool] = ..., created_ms: _Optional[int] = ...) -> None: ...

class ReplicaBucketResponse(_message.Message):
    __slots__ = ("header", "existed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    existed: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class PartitionDigestRequest(_message.Message):
    __slots__ = ("header", "partition", "leaf_count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LEAF_COUNT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    partition: int
    leaf_count: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., partition: _Optional[int] = ..., leaf_count: _Optional[int] = ...) -> None: ...

class PartitionDigestResponse(_message.Message):
    __slots__ = ("header", "root", "leaves", "entries", "bytes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    root: bytes
    leaves: bytes
    entries: int
    bytes: int
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., root: _Optional[bytes] = ..., leaves: _Optional[bytes] = ..., entries: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...
