"""The cairn.v1 wire protocol: generated modules are current, importable and safe.

The byte-identity tests need grpcio-tools (the ``dev`` extra) at the version that made
the committed files; ``python proto/generate.py`` regenerates them.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import zlib

import pytest
from google.protobuf import descriptor as _descriptor

from cairn.v1 import admin_pb2, common_pb2, object_pb2, replica_pb2

pytestmark = pytest.mark.unit

MODULES = (common_pb2, object_pb2, admin_pb2, replica_pb2)
FieldDescriptor = _descriptor.FieldDescriptor

# Field names that carry a bucket name, an object key or bytes derived from keys.
# They must be `bytes` on the wire: protobuf rejects bad UTF-8 in a `string` field
# before any handler runs (INTERNAL/UNKNOWN instead of INVALID_ARGUMENT), see DESIGN.md.
KEY_LIKE_NAMES = frozenset({
    "bucket", "key", "prefix", "start_after", "page_token", "next_page_token",
    "start_after_bucket", "start_after_key",
})
KEY_LIKE_FIELDS = frozenset({("cairn.v1.BucketInfo", "name")})

# Every `string` field of the protocol. Adding one is a decision: it must never hold
# user-chosen bytes that may be bad UTF-8 (keys, bucket names: use bytes).
STRING_FIELD_NAMES = frozenset({
    "request_id", "codec", "tier", "code", "message", "address", "zone",
    "software_version", "path", "disk_id", "state", "error", "errors", "placement",
})


@pytest.fixture(scope="module")
def generator(project_root):
    """proto/generate.py, loaded as a module (proto/ is not a package)."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) is not installed")
    path = project_root / "proto" / "generate.py"
    spec = importlib.util.spec_from_file_location("cairn_proto_generate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(generator):
    return generator.generate()


def _messages(file_descriptor):
    def walk(message):
        yield message
        for nested in message.nested_types:
            yield from walk(nested)

    for message in file_descriptor.message_types_by_name.values():
        yield from walk(message)


def _fields():
    for module in MODULES:
        for message in _messages(module.DESCRIPTOR):
            if message.GetOptions().map_entry:
                continue  # map<string, string> entries: their "key" is a metadata name
            yield from message.fields


# --- the committed modules are what the sources generate ------------------------------


def test_regenerating_changes_nothing(generator, regenerated, project_root):
    committed = generator.committed(project_root / "client" / "v1")
    assert sorted(regenerated) == sorted(committed), "generated files missing or extra"
    changed = generator.stale(regenerated, committed)
    assert not changed, (
        f"{changed} differ from what proto/generate.py makes (committed by grpcio-tools "
        f"{generator.generator_version(committed)}, installed "
        f"{generator.generator_version(regenerated)}); run: python proto/generate.py"
    )


def test_every_source_has_its_three_modules(generator, regenerated):
    stems = {source.stem for source in generator.proto_sources()}
    assert stems == {"common", "object", "admin", "replica"}
    expected = {f"{stem}{suffix}" for stem in stems for suffix in generator.GENERATED_SUFFIXES}
    assert set(regenerated) == expected


def test_generation_is_deterministic(generator, regenerated):
    assert generator.generate() == regenerated


def test_output_holds_no_machine_paths(regenerated, project_root):
    for name, data in regenerated.items():
        assert str(project_root).encode() not in data, name
        assert b"cairn-proto-" not in data, name  # the temporary directory's prefix


def test_check_mode_names_stale_files(generator, regenerated, project_root, tmp_path):
    script = project_root / "proto" / "generate.py"

    def check():
        return subprocess.run(
            [sys.executable, str(script), "--check", "--target", str(tmp_path)],
            capture_output=True, text=True, check=False,
        )

    generator.write(regenerated, tmp_path)
    assert check().returncode == 0
    (tmp_path / "object_pb2.py").write_bytes(b"# edited by hand\n")
    (tmp_path / "gone_pb2.py").write_bytes(b"# no source any more\n")
    (tmp_path / "admin_pb2.pyi").unlink()
    proc = check()
    assert proc.returncode == 1
    named = sorted(re.findall(r"would change: (\S+)", proc.stdout))
    assert [p.rsplit("/", 1)[-1] for p in named] == [
        "admin_pb2.pyi", "gone_pb2.py", "object_pb2.py",
    ]
    assert generator.write(regenerated, tmp_path) == [
        "admin_pb2.pyi", "gone_pb2.py", "object_pb2.py",
    ]
    assert check().returncode == 0
    assert generator.write(regenerated, tmp_path) == []


def test_check_mode_passes_on_the_committed_files(project_root):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) is not installed")
    proc = subprocess.run(
        [sys.executable, str(project_root / "proto" / "generate.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the generated modules ------------------------------------------------------------


@pytest.mark.parametrize("stem", ["common", "object", "admin", "replica"])
def test_modules_import_under_cairn_v1(stem):
    pb2 = importlib.import_module(f"cairn.v1.{stem}_pb2")
    grpc_module = importlib.import_module(f"cairn.v1.{stem}_pb2_grpc")
    assert pb2.DESCRIPTOR.package == "cairn.v1"
    assert pb2.DESCRIPTOR.name == f"cairn/v1/{stem}.proto"
    assert grpc_module.__name__ == f"cairn.v1.{stem}_pb2_grpc"


def test_services_and_stream_shapes():
    def shape(service, name):
        method = service.methods_by_name[name]
        return (method.client_streaming, method.server_streaming)

    unary, client, server, bidi = (False, False), (True, False), (False, True), (True, True)
    objects = object_pb2.DESCRIPTOR.services_by_name["ObjectService"]
    assert {m.name: shape(objects, m.name) for m in objects.methods} == {
        "CreateBucket": unary, "DeleteBucket": unary, "ListBuckets": unary,
        "Put": client, "Get": server, "Head": unary, "Delete": unary, "List": unary,
        "PutSmall": unary, "GetSmall": unary,
    }
    admin = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
    assert {m.name: shape(admin, m.name) for m in admin.methods} == {
        "Status": unary, "GetClusterMap": unary, "Scrub": unary, "Repair": unary,
        "SetRepairRate": unary,
    }
    replica = replica_pb2.DESCRIPTOR.services_by_name["ReplicaService"]
    assert {m.name: shape(replica, m.name) for m in replica.methods} == {
        "ReplicaPut": client, "ReplicaDelete": unary, "ReplicaHead": unary,
        "ReplicaGet": server, "Replicate": bidi, "ListPartition": server,
        "ReplicaList": unary, "ReplicaBucket": unary, "ReplicaListBuckets": unary,
        "PartitionDigest": unary,
    }


def test_put_stream_round_trip():
    value = b"hello, cairn" * 1000
    header = common_pb2.RequestHeader(
        request_id="r-1", epoch=7,
        clock=common_pb2.Version(physical_ms=1_700_000_000_000, logical=3, node_id=2),
        consistency=common_pb2.CONSISTENCY_QUORUM,
    )
    stream = [
        object_pb2.PutRequest(header=object_pb2.PutHeader(
            request=header, bucket=b"app", key="é/ü".encode(), codec="raw",
            metadata={"owner": "ops"}, size=len(value),
        )),
        *(object_pb2.PutRequest(chunk=value[i:i + 4096]) for i in range(0, len(value), 4096)),
        object_pb2.PutRequest(end=object_pb2.PutEnd(size=len(value), checksum=0xFFFF_FFFF)),
    ]
    decoded = [object_pb2.PutRequest.FromString(m.SerializeToString()) for m in stream]
    assert decoded == stream
    assert [(m.HasField("header"), m.HasField("end")) for m in decoded] == (
        [(True, False)] + [(False, False)] * 3 + [(False, True)])
    single = object_pb2.PutRequest(header=object_pb2.PutHeader(bucket=b"app", key=b"k"),
                                   chunk=b"v", end=object_pb2.PutEnd(size=1, checksum=5))
    again = object_pb2.PutRequest.FromString(single.SerializeToString())
    assert again.HasField("header") and again.HasField("end") and again.chunk == b"v"
    first = decoded[0].header
    assert first.HasField("size")
    assert first.request.clock.logical == 3
    assert first.key.decode() == "é/ü"
    assert b"".join(m.chunk for m in decoded[1:-1]) == value
    assert decoded[-1].end.checksum == 0xFFFF_FFFF  # fixed32 holds the whole CRC range
    assert not object_pb2.PutHeader().HasField("size")  # "unknown size" is distinguishable


def test_get_stream_round_trip():
    value = bytes(range(256)) * 10
    info = common_pb2.ObjectInfo(
        bucket=b"app", key=b"k", size=len(value),
        version=common_pb2.Version(physical_ms=5, logical=1, node_id=3),
        checksum=zlib.crc32(value), codec="raw", metadata={"a": "b"},
        tier="local", partition=17, modified_ms=5,
    )
    stream = [
        object_pb2.GetResponse(header=object_pb2.GetHeader(
            response=common_pb2.ResponseHeader(epoch=7, node_id=3),
            info=info, range_start=10, range_end=110,
        )),
        object_pb2.GetResponse(chunk=value[10:110]),
        object_pb2.GetResponse(end=object_pb2.GetEnd(checksum=zlib.crc32(value[10:110]))),
    ]
    decoded = [object_pb2.GetResponse.FromString(m.SerializeToString()) for m in stream]
    assert decoded == stream
    assert [(m.HasField("header"), m.chunk != b"", m.HasField("end")) for m in decoded] == [
        (True, False, False), (False, True, False), (False, False, True)]
    assert decoded[0].header.info.metadata["a"] == "b"
    assert not decoded[0].header.info.deleted
    request = object_pb2.GetRequest(bucket=b"app", key=b"k", range_start=0)
    again = object_pb2.GetRequest.FromString(request.SerializeToString())
    assert again.HasField("range_start")  # an explicit 0 survives the wire
    assert not again.HasField("range_end")


def test_replicate_round_trip():
    request = replica_pb2.ReplicateRequest(
        seq=42,
        put=replica_pb2.ReplicaWrite(
            object=replica_pb2.ReplicaObject(bucket=b"app", key=b"k", size=3, checksum=1),
            value=b"abc",
        ),
    )
    decoded = replica_pb2.ReplicateRequest.FromString(request.SerializeToString())
    assert decoded.WhichOneof("op") == "put"
    assert decoded.put.value == b"abc"
    response = replica_pb2.ReplicateResponse(
        seq=42, applied=False, current=common_pb2.Version(physical_ms=9),
    )
    assert not response.HasField("error")


# --- regression guards for the wire rules (docs/protocol.md) ---------------------------


def test_key_like_fields_are_bytes():
    seen = set()
    for field in _fields():
        owner = field.containing_type.full_name
        if field.name in KEY_LIKE_NAMES or (owner, field.name) in KEY_LIKE_FIELDS:
            seen.add(field.name)
            assert field.type == FieldDescriptor.TYPE_BYTES, f"{owner}.{field.name} is not bytes"
    assert seen == KEY_LIKE_NAMES | {"name"}  # the guard really looked at each kind


def test_string_fields_are_the_known_ones():
    strings = {
        f"{field.containing_type.full_name}.{field.name}"
        for field in _fields()
        if field.type == FieldDescriptor.TYPE_STRING
    }
    unexpected = sorted(s for s in strings if s.rsplit(".", 1)[1] not in STRING_FIELD_NAMES)
    assert not unexpected, (
        f"new string fields {unexpected}: bad UTF-8 in a string fails decoding before any "
        "handler runs. Use bytes for anything a user chooses; else add the name here."
    )


def test_bad_utf8_key_decodes():
    raw = object_pb2.HeadRequest(bucket=b"\xff\xfe", key=b"\xc3\x28").SerializeToString()
    decoded = object_pb2.HeadRequest.FromString(raw)  # the node's validation rejects it
    assert decoded.key == b"\xc3\x28"


def test_next_field_comments_match_the_descriptors(project_root):
    """Each message's "Next field: N." comment names the first unused number."""
    by_name = {}
    for module in MODULES:
        for message in _messages(module.DESCRIPTOR):
            by_name[message.name] = message
    found = 0
    for source in sorted((project_root / "proto" / "cairn" / "v1").glob("*.proto")):
        text = source.read_text()
        declared = re.findall(r"^message (\w+) \{", text, re.MULTILINE)
        notes = re.findall(r"^// Next field: (\d+)\.\nmessage (\w+) \{", text, re.MULTILINE)
        noted = {name: int(n) for n, name in notes}
        assert sorted(noted) == sorted(declared), f"{source.name}: a message lacks its note"
        for name, next_number in noted.items():
            message = by_name[name]
            used = max(f.number for f in message.fields)
            assert next_number > used, f"{name}: the note points at a used number"
            if "reserved" not in text:  # else a reserved number may sit above `used`
                assert next_number == used + 1, f"{name}: next field is {used + 1}"
            found += 1
    assert found >= 40


def test_enum_zero_values_are_defaults():
    assert common_pb2.Consistency.Name(0) == "CONSISTENCY_DEFAULT"
    assert common_pb2.RequestHeader().consistency == common_pb2.CONSISTENCY_DEFAULT
