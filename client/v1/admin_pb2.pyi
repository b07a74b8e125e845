from cairn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScrubRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ...) -> None: ...

class ScrubResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class RepairRequest(_message.Message):
    __slots__ = ("header", "partition", "wait")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    partition: int
    wait: bool
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., partition: _Optional[int] = ..., wait: _Optional[bool] = ...) -> None: ...

class RepairResponse(_message.Message):
    __slots__ = ("header", "partitions", "objects_pulled", "objects_pushed", "errors")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_PULLED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_PUSHED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    partitions: int
    objects_pulled: int
    objects_pushed: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., partitions: _Optional[int] = ..., objects_pulled: _Optional[int] = ..., objects_pushed: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class SetRepairRateRequest(_message.Message):
    __slots__ = ("header", "rate_bytes_s")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RATE_BYTES_S_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    rate_bytes_s: int
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ..., rate_bytes_s: _Optional[int] = ...) -> None: ...

class SetRepairRateResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("header", "status")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    status: NodeStatus
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "address", "software_version", "uptime_s", "epoch", "disks", "object_count", "pending_hints", "zone", "counters", "labels", "tombstone_count", "repair")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_HINTS_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    software_version: str
    uptime_s: float
    epoch: int
    disks: _containers.RepeatedCompositeFieldContainer[DiskStatus]
    object_count: int
    pending_hints: int
    zone: str
    counters: _containers.ScalarMap[str, int]
    labels: _containers.ScalarMap[str, str]
    tombstone_count: int
    repair: RepairStatus
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ..., software_version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., epoch: _Optional[int] = ..., disks: _Optional[_Iterable[_Union[DiskStatus, _Mapping]]] = ..., object_count: _Optional[int] = ..., pending_hints: _Optional[int] = ..., zone: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., labels: _Optional[_Mapping[str, str]] = ..., tombstone_count: _Optional[int] = ..., repair: _Optional[_Union[RepairStatus, _Mapping]] = ...) -> None: ...

class RepairStatus(_message.Message):
    __slots__ = ("partitions_held", "partitions_below_redundancy", "bytes_to_copy", "eta_s", "rate_bytes_s", "antientropy_passes", "antientropy_last_pass_ms", "objects_pulled", "objects_pushed", "bytes_copied", "scrub_progress", "scrub_passes", "scrub_last_pass_ms", "scrub_checked", "scrub_repaired", "scrub_lost", "scrub_deferred", "partitions_rebuilding")
    PARTITIONS_HELD_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_BELOW_REDUNDANCY_FIELD_NUMBER: _ClassVar[int]
    BYTES_TO_COPY_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    RATE_BYTES_S_FIELD_NUMBER: _ClassVar[int]
    ANTIENTROPY_PASSES_FIELD_NUMBER: _ClassVar[int]
    ANTIENTROPY_LAST_PASS_MS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_PULLED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_PUSHED_FIELD_NUMBER: _ClassVar[int]
    BYTES_COPIED_FIELD_NUMBER: _ClassVar[int]
    SCRUB_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SCRUB_PASSES_FIELD_NUMBER: _ClassVar[int]
    SCRUB_LAST_PASS_MS_FIELD_NUMBER: _ClassVar[int]
    SCRUB_CHECKED_FIELD_NUMBER: _ClassVar[int]
    SCRUB_REPAIRED_FIELD_NUMBER: _ClassVar[int]
    SCRUB_LOST_FIELD_NUMBER: _ClassVar[int]
    SCRUB_DEFERRED_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_REBUILDING_FIELD_NUMBER: _ClassVar[int]
    partitions_held: int
    partitions_below_redundancy: int
    bytes_to_copy: int
    eta_s: float
    rate_bytes_s: int
    antientropy_passes: int
    antientropy_last_pass_ms: int
    objects_pulled: int
    objects_pushed: int
    bytes_copied: int
    scrub_progress: float
    scrub_passes: int
    scrub_last_pass_ms: int
    scrub_checked: int
    scrub_repaired: int
    scrub_lost: int
    scrub_deferred: int
    partitions_rebuilding: int
    def __init__(self, partitions_held: _Optional[int] = ..., partitions_below_redundancy: _Optional[int] = ..., bytes_to_copy: _Optional[int] = ..., eta_s: _Optional[float] = ..., rate_bytes_s: _Optional[int] = ..., antientropy_passes: _Optional[int] = ..., antientropy_last_pass_ms: _Optional[int] = ..., objects_pulled: _Optional[int] = ..., objects_pushed: _Optional[int] = ..., bytes_copied: _Optional[int] = ..., scrub_progress: _Optional[float] = ..., scrub_passes: _Optional[int] = ..., scrub_last_pass_ms: _Optional[int] = ..., scrub_checked: _Optional[int] = ..., scrub_repaired: _Optional[int] = ..., scrub_lost: _Optional[int] = ..., scrub_deferred: _Optional[int] = ..., partitions_rebuilding: _Optional[int] = ...) -> None: ...

class DiskStatus(_message.Message):
    __slots__ = ("path", "disk_id", "state", "error", "used_bytes", "free_bytes", "object_count", "segment_count", "live_bytes", "dead_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    disk_id: str
    state: str
    error: str
    used_bytes: int
    free_bytes: int
    object_count: int
    segment_count: int
    live_bytes: int
    dead_bytes: int
    def __init__(self, path: _Optional[str] = ..., disk_id: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., used_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., object_count: _Optional[int] = ..., segment_count: _Optional[int] = ..., live_bytes: _Optional[int] = ..., dead_bytes: _Optional[int] = ...) -> None: ...

class GetClusterMapRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.RequestHeader
    def __init__(self, header: _Optional[_Union[_common_pb2.RequestHeader, _Mapping]] = ...) -> None: ...

class GetClusterMapResponse(_message.Message):
    __slots__ = ("header", "map")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    header: _common_pb2.ResponseHeader
    map: ClusterMap
    def __init__(self, header: _Optional[_Union[_common_pb2.ResponseHeader, _Mapping]] = ..., map: _Optional[_Union[ClusterMap, _Mapping]] = ...) -> None: ...

class ClusterMap(_message.Message):
    __slots__ = ("epoch", "replicas_n", "write_quorum", "read_quorum", "partitions", "nodes", "placement")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_N_FIELD_NUMBER: _ClassVar[int]
    WRITE_QUORUM_FIELD_NUMBER: _ClassVar[int]
    READ_QUORUM_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    replicas_n: int
    write_quorum: int
    read_quorum: int
    partitions: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    placement: str
    def __init__(self, epoch: _Optional[int] = ..., replicas_n: _Optional[int] = ..., write_quorum: _Optional[int] = ..., read_quorum: _Optional[int] = ..., partitions: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., placement: _Optional[str] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("id", "address", "zone", "weight")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    zone: str
    weight: float
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., zone: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...
