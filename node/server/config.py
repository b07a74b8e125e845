"""Node configuration: TOML file, then CAIRN_* environment variables, then flags.

Every field is documented on ``NodeConfig``; ``load_config`` validates once at startup
and rejects unknown keys (STYLE 2.12).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

from cairn.errors import InvalidArgument
from cairn.node.storage.config import SYNC_MODES, EngineConfig

__all__ = ["NodeConfig", "build_parser", "load_config"]

MiB: Final = 1024 * 1024
ENV_PREFIX: Final = "CAIRN_"
ENGINE_ENV_PREFIX: Final = "CAIRN_ENGINE_"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """How one node runs.

    Attributes:
        node_id: this node's id in the cluster map (1..2**32-1, default 1).
        listen: gRPC address, host:port (default 127.0.0.1:7101; port 0 picks one).
        data: data directories, one per disk (default ./data).
        cluster_map: path of the cluster map JSON; unset means a one-node cluster.
        zone: this node's zone label (informational when the map is given).
        metrics_listen: host:port of the Prometheus HTTP endpoint; unset disables it.
        log_level: debug, info, warning or error (default info).
        shutdown_grace_s: how long in-flight calls may run on SIGTERM (seconds, 10).
        max_key_bytes: longest key accepted (bytes, 1..1024, default 1024).
        max_metadata_bytes: largest encoded user metadata (bytes, default 8 KiB).
        max_object_bytes: largest object accepted (bytes, default 1 TiB).
        small_object_bytes: largest value the unary PutSmall/GetSmall carry (bytes,
            default 1 MiB).
        max_concurrent_streams: HTTP/2 streams per connection (default 256).
        executor_threads: threads of the engine adapter (default 8).
        replica_timeout_s: deadline of one call to another node (seconds, default 5).
        background_interval_s: how often peers are probed and hints replayed (seconds,
            default 1).
        repair_rate_bytes_s: bytes/s anti-entropy and rebuild may copy (0 = unlimited;
            default 64 MiB/s); ``cairn admin repair --rate`` changes it while it runs.
        scrub_rate_bytes_s: bytes/s the scrubber reads (0 = unlimited; default 32 MiB/s).
        scrub_interval_s: pause between scrub passes (seconds, default one day).
        antientropy_interval_s: pause between anti-entropy passes (seconds, default 600).
        clock_offset_ms: added to this node's wall clock. For tests and chaos runs that
            skew a node's clock on purpose; leave 0 in production (default 0).
        fault_control: TEST ONLY. Path of a JSON control file that switches on the I/O
            fault layer under the engine (fsync EIO, torn writes, power loss; see
            docs/storage.md and ``cairn.node.server.faults``). Unset (default): the
            engine uses the plain file system and the layer costs nothing. Never set it
            in production.
        engine: the storage engine's settings (the ``[engine]`` table, see
            ``EngineConfig``); ``disks`` comes from ``data``.
    """

    node_id: int = 1
    listen: str = "127.0.0.1:7101"
    data: tuple[str, ...] = ("./data",)
    cluster_map: str | None = None
    zone: str = ""
    metrics_listen: str | None = None
    log_level: str = "info"
    shutdown_grace_s: float = 10.0
    max_key_bytes: int = 1024
    max_metadata_bytes: int = 8 * 1024
    max_object_bytes: int = 1 << 40
    small_object_bytes: int = MiB
    max_concurrent_streams: int = 256
    executor_threads: int = 8
    replica_timeout_s: float = 5.0
    background_interval_s: float = 1.0
    repair_rate_bytes_s: float = 64 * MiB
    scrub_rate_bytes_s: float = 32 * MiB
    scrub_interval_s: float = 24 * 3600.0
    antientropy_interval_s: float = 600.0
    clock_offset_ms: int = 0
    fault_control: str | None = None
    engine: Mapping[str, Any] = field(default_factory=dict)

    def engine_config(self) -> EngineConfig:
        """The engine's config: the ``[engine]`` table plus the node-level limits.

        Raises:
            InvalidArgument: an engine setting is unknown or out of range.
        """
        values = dict(self.engine)
        values["disks"] = self.data
        values.setdefault("max_key_bytes", self.max_key_bytes)
        values.setdefault("max_meta_bytes", self.max_metadata_bytes)
        values.setdefault("max_value_bytes", self.max_object_bytes)
        return EngineConfig.from_mapping(values)

    def validate(self) -> NodeConfig:
        """Raises: InvalidArgument naming every field that is wrong."""
        problems = []
        if not 1 <= self.node_id < 2**32:
            problems.append("node_id: must be 1..4294967295")
        for name in ("listen", "metrics_listen"):
            value = getattr(self, name)
            if value is None:
                continue
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                problems.append(f"{name}: {value!r} is not host:port (port 0 picks one)")
        if not self.data:
            problems.append("data: at least one data directory is needed")
        if self.log_level not in ("debug", "info", "warning", "error"):
            problems.append("log_level: one of debug, info, warning, error")
        if self.shutdown_grace_s < 0:
            problems.append("shutdown_grace_s: must be >= 0")
        if not 1 <= self.max_key_bytes <= 1024:
            problems.append("max_key_bytes: must be 1..1024")
        if not 0 <= self.max_metadata_bytes <= 64 * 1024:
            problems.append("max_metadata_bytes: must be 0..65536")
        if self.max_object_bytes < 0:
            problems.append("max_object_bytes: must be >= 0")
        if not 4096 <= self.small_object_bytes <= 3 * MiB:
            problems.append("small_object_bytes: must be 4 KiB..3 MiB")
        if not 1 <= self.max_concurrent_streams <= 65536:
            problems.append("max_concurrent_streams: must be 1..65536")
        if not 1 <= self.executor_threads <= 256:
            problems.append("executor_threads: must be 1..256")
        if not 0.05 <= self.replica_timeout_s <= 600:
            problems.append("replica_timeout_s: must be 0.05..600")
        if not 0.01 <= self.background_interval_s <= 3600:
            problems.append("background_interval_s: must be 0.01..3600")
        if self.repair_rate_bytes_s < 0 or self.scrub_rate_bytes_s < 0:
            problems.append("repair_rate_bytes_s, scrub_rate_bytes_s: must be >= 0")
        if self.scrub_interval_s < 0.01 or self.antientropy_interval_s < 0.01:
            problems.append("scrub_interval_s, antientropy_interval_s: must be >= 0.01")
        if problems:
            raise InvalidArgument("invalid node config: " + "; ".join(problems))
        self.engine_config()
        return self


_FIELDS: Final = {f.name: f for f in fields(NodeConfig)}


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    kind = str(kind)
    try:
        if kind.startswith("tuple"):
            if isinstance(raw, str):
                return tuple(p for p in (s.strip() for s in raw.split(",")) if p)
            return tuple(str(p) for p in raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if "None" in kind:
            return None if raw in ("", None) else str(raw)
        return raw
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name}: cannot read {raw!r}: {exc}") from exc


def _engine_env(env: Mapping[str, str]) -> dict[str, Any]:
    known = {f.name: f for f in fields(EngineConfig)}
    out: dict[str, Any] = {}
    for var, raw in env.items():
        if not var.startswith(ENGINE_ENV_PREFIX):
            continue
        name = var[len(ENGINE_ENV_PREFIX):].lower()
        if name not in known:
            raise InvalidArgument(f"unknown engine setting in {var}")
        kind = str(known[name].type)
        out[name] = raw if kind == "str" else _coerce(var, raw, kind)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn node", description="Run one cairn storage node in the foreground.",
    )
    parser.add_argument("--config", help="TOML file (flags and CAIRN_* variables override it)")
    parser.add_argument("--data", action="append", help="data directory (repeat per disk)")
    parser.add_argument("--listen", help="gRPC address host:port (default 127.0.0.1:7101)")
    parser.add_argument("--node-id", type=int, help="this node's id in the cluster map")
    parser.add_argument("--cluster-map", help="cluster map JSON file")
    parser.add_argument("--zone", help="zone label")
    parser.add_argument("--metrics-listen", help="Prometheus HTTP address host:port")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--sync", choices=list(SYNC_MODES),
                        help="fsync policy; anything but 'always' loses acknowledged writes "
                             "on a crash (benchmarks only)")
    parser.add_argument("--fault-control", help="TEST ONLY: JSON file that switches on the "
                        "I/O fault layer (fsync EIO, torn writes, power loss)")
    return parser


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
                ) -> NodeConfig:
    """Build the node's config from ``--config`` TOML, CAIRN_* variables and flags.

    Raises:
        InvalidArgument: an unknown key, a bad value, or an unreadable file.
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args(list(argv or []))
    values: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    path = args.config or env.get("CAIRN_CONFIG")
    if path:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgument(f"cannot read config file {path}: {exc}") from exc
        engine.update(table.pop("engine", {}))
        for name, raw in table.items():
            if name not in _FIELDS or name == "engine":
                raise InvalidArgument(f"unknown setting {name!r} in {path}")
            values[name] = _coerce(name, raw, _FIELDS[name].type)
    for name, spec in _FIELDS.items():
        var = ENV_PREFIX + name.upper()
        if name != "engine" and var in env:
            values[name] = _coerce(var, env[var], spec.type)
    engine.update(_engine_env(env))
    flags = {
        "data": tuple(args.data) if args.data else None, "listen": args.listen,
        "node_id": args.node_id, "cluster_map": args.cluster_map, "zone": args.zone,
        "metrics_listen": args.metrics_listen, "log_level": args.log_level,
        "fault_control": args.fault_control,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.sync:
        engine["sync"] = args.sync
    values["engine"] = engine
    return dataclasses.replace(NodeConfig(), **values).validate()
