"""Regenerate the cairn.v1 protocol modules from the .proto sources.

The sources are ``proto/cairn/v1/*.proto``; the generated ``*_pb2.py``, ``*_pb2.pyi``
and ``*_pb2_grpc.py`` modules are committed in ``client/v1/``, which is importable as
``cairn.v1`` (so the generated ``from cairn.v1 import common_pb2`` lines just work).

Usage (from anywhere, with the project's virtualenv)::

    python proto/generate.py           # rewrite client/v1/ from the sources
    python proto/generate.py --check   # change nothing; exit 1 naming stale files
    python proto/generate.py --target DIR [--check]   # another directory (tests)

The output depends only on the sources and the grpcio-tools version (which bundles
protoc and the gRPC plugin): protoc runs on the sorted sources, relative to
``proto/``, into a fresh temporary directory, and nothing of that directory's path
ends up in the output. A different grpcio-tools version changes the version lines of
every generated file; ``--check`` then says which version made the committed ones.
tests/unit/test_proto.py runs the same check.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PROTO_ROOT: Final = ROOT / "proto"
PACKAGE_PATH: Final = Path("cairn", "v1")
TARGET_DIR: Final = ROOT / "client" / "v1"
GENERATED_SUFFIXES: Final = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

_GRPC_VERSION_RE: Final = re.compile(rb"^GRPC_GENERATED_VERSION = '([^']+)'$", re.MULTILINE)


class GenerateError(RuntimeError):
    """protoc could not run or rejected the sources."""


def is_generated(name: str) -> bool:
    """Whether a file name is one this script owns in ``client/v1/``."""
    return name.endswith(GENERATED_SUFFIXES)


def proto_sources() -> list[Path]:
    """The .proto files of the package, relative to ``proto/``, sorted."""
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / PACKAGE_PATH).glob("*.proto"))


def generate() -> dict[str, bytes]:
    """Run protoc on the sources and return the generated files by name.

    Raises:
        GenerateError: grpcio-tools is missing, or protoc failed.
    """
    if importlib.util.find_spec("grpc_tools") is None:
        raise GenerateError("grpcio-tools is not installed (pip install -e '.[dev]')")
    sources = proto_sources()
    if not sources:
        raise GenerateError(f"no .proto files in {PROTO_ROOT / PACKAGE_PATH}")
    with tempfile.TemporaryDirectory(prefix="cairn-proto-") as tmp:
        out = Path(tmp)
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            "-I.",  # paths in the output are relative to proto/: "cairn/v1/common.proto"
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *(source.as_posix() for source in sources),
        ]
        proc = subprocess.run(
            cmd, cwd=PROTO_ROOT, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise GenerateError(f"protoc failed ({proc.returncode}):\n{proc.stderr.strip()}")
        produced = out / PACKAGE_PATH
        return {
            path.name: path.read_bytes()
            for path in sorted(produced.iterdir())
            if path.is_file() and is_generated(path.name)
        }


def committed(directory: Path = TARGET_DIR) -> dict[str, bytes]:
    """The generated files currently in ``directory``, by name."""
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file() and is_generated(path.name)
    }


def stale(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Names whose content differs, or that are missing from or extra in ``actual``."""
    names = expected.keys() | actual.keys()
    return sorted(name for name in names if expected.get(name) != actual.get(name))


def write(files: dict[str, bytes], directory: Path = TARGET_DIR) -> list[str]:
    """Make ``directory`` hold exactly ``files`` (of the generated kinds); return changes.

    Each file is replaced atomically (temp file, then rename), so a process importing
    ``cairn.v1`` meanwhile never sees half a module. Files that did not change are not
    touched; generated files with no source any more are removed.
    """
    current = committed(directory)
    changed = stale(files, current)
    for name in changed:
        target = directory / name
        if name not in files:
            target.unlink()
            continue
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(files[name])
        os.replace(tmp, target)
    return changed


def generator_version(files: dict[str, bytes]) -> str | None:
    """The grpcio-tools version recorded in the ``*_pb2_grpc.py`` files, if any."""
    for name, data in sorted(files.items()):
        if name.endswith("_pb2_grpc.py"):
            match = _GRPC_VERSION_RE.search(data)
            if match:
                return match.group(1).decode()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true",
        help="change nothing; exit 1 and name the files that would change",
    )
    parser.add_argument(
        "--target", type=Path, default=TARGET_DIR,
        help="directory that holds the generated modules (default: client/v1)",
    )
    args = parser.parse_args(argv)
    target: Path = args.target.resolve()
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    if not target.is_dir():
        print(f"generate.py: {shown} is not a directory", file=sys.stderr)
        return 2
    try:
        files = generate()
    except GenerateError as exc:
        print(f"generate.py: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = committed(target)
        changed = stale(files, current)
        if not changed:
            return 0
        for name in changed:
            print(f"would change: {shown / name}")
        made_by, installed = generator_version(current), generator_version(files)
        if made_by is not None and made_by != installed:
            print(
                f"note: the committed files were made by grpcio-tools {made_by}, "
                f"this environment has {installed}",
                file=sys.stderr,
            )
        print("run: python proto/generate.py", file=sys.stderr)
        return 1
    for name in write(files, target):
        print(f"wrote: {shown / name}" if name in files else f"removed: {shown / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
