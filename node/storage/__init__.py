"""cairn.node.storage: one node's objects on its local disks. No network, no cluster, no S3.

Owns: the on-disk format (``format.py``, prose in docs/storage-format.md), the per-disk
LMDB index and append-only segment log with group commit (``disk.py``), verified reads
(``reader.py``), compaction and scrub. Does not own: versions (callers stamp them),
replication, placement, tiering.

Start reading at ``Engine`` (``engine.py``): ``Engine(EngineConfig(disks=(...,))).open()``,
then ``create_bucket``, ``put``/``put_stream``/``delete``, ``get``/``head``/``list``,
``iter_partition``, ``scrub``, ``compact``. Guarantees are in docs/storage.md.
"""

from __future__ import annotations

from .compaction import CompactionReport
from .config import SYNC_ALWAYS, SYNC_UNSAFE_NEVER, EngineConfig
from .disk import DiskState
from .engine import DiskStatus, Engine, WriteResult
from .fs import Fault, FaultyFileSystem, FileSystem
from .reader import ObjectInfo, ObjectReader
from .scrub import DamagedRecord, ScrubReport

__all__ = [
    "SYNC_ALWAYS",
    "SYNC_UNSAFE_NEVER",
    "CompactionReport",
    "DamagedRecord",
    "DiskState",
    "DiskStatus",
    "Engine",
    "EngineConfig",
    "Fault",
    "FaultyFileSystem",
    "FileSystem",
    "ObjectInfo",
    "ObjectReader",
    "ScrubReport",
    "WriteResult",
]
