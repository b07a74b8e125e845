from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_DEFAULT: _ClassVar[Consistency]
    CONSISTENCY_ONE: _ClassVar[Consistency]
    CONSISTENCY_QUORUM: _ClassVar[Consistency]
    CONSISTENCY_ALL: _ClassVar[Consistency]
CONSISTENCY_DEFAULT: Consistency
CONSISTENCY_ONE: Consistency
CONSISTENCY_QUORUM: Consistency
CONSISTENCY_ALL: Consistency

class Version(_message.Message):
    __slots__ = ("physical_ms", "logical", "node_id")
    PHYSICAL_MS_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    physical_ms: int
    logical: int
    node_id: int
    def __init__(self, physical_ms: _Optional[int] = ..., logical: _Optional[int] = ..., node_id: _Optional[int] = ...) -> None: ...

class RequestHeader(_message.Message):
    __slots__ = ("request_id", "epoch", "clock", "consistency", "node_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    epoch: int
    clock: Version
    consistency: Consistency
    node_id: int
    def __init__(self, request_id: _Optional[str] = ..., epoch: _Optional[int] = ..., clock: _Optional[_Union[Version, _Mapping]] = ..., consistency: _Optional[_Union[Consistency, str]] = ..., node_id: _Optional[int] = ...) -> None: ...

class ResponseHeader(_message.Message):
    __slots__ = ("epoch", "clock", "node_id")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    clock: Version
    node_id: int
    def __init__(self, epoch: _Optional[int] = ..., clock: _Optional[_Union[Version, _Mapping]] = ..., node_id: _Optional[int] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("bucket", "key", "size", "version", "checksum", "codec", "metadata", "tier", "deleted", "partition", "modified_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_MS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    size: int
    version: Version
    checksum: int
    codec: str
    metadata: _containers.ScalarMap[str, str]
    tier: str
    deleted: bool
    partition: int
    modified_ms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., size: _Optional[int] = ..., version: _Optional[_Union[Version, _Mapping]] = ..., checksum: _Optional[int] = ..., codec: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tier: _Optional[str] = ..., deleted: _Optional[bool] = ..., partition: _Optional[int] = ..., modified_ms: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "current", "outcomes")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    current: Version
    outcomes: _containers.RepeatedCompositeFieldContainer[ReplicaOutcome]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., current: _Optional[_Union[Version, _Mapping]] = ..., outcomes: _Optional[_Iterable[_Union[ReplicaOutcome, _Mapping]]] = ...) -> None: ...

class ReplicaOutcome(_message.Message):
    __slots__ = ("node_id", "code", "message")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    code: str
    message: str
    def __init__(self, node_id: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
