"""Server processes for the network benchmarks: their CPU time, and starting and stopping
the floor servers of ``_rpc_floor`` (the nodes are started by ``cairn.cluster.launcher``).

CPU per operation of a server is read from ``/proc/<pid>/stat`` (utime + stime of every
thread of the process, in clock ticks: 10 ms resolution, so cells last seconds).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Final

ROOT: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
_PR_SET_PDEATHSIG: Final = 1


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads); 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: count fields after its ')'.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14, 15 of stat(5)


def cpu_of(pids: Iterable[int]) -> float:
    """Summed CPU seconds of ``pids``."""
    return sum(proc_cpu_s(pid) for pid in pids)


def _pdeathsig() -> Callable[[], None] | None:
    """preexec_fn: SIGTERM the child when this process dies, so no floor server outlives
    a killed benchmark (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


class FloorProcess:
    """``python -m benchmarks._rpc_floor ARGS`` in a subprocess; ``address`` once started.

    The server prints one JSON line ``{"event": "listening", "port": N}`` on stdout when
    it serves; its stderr goes to ``log_path``.
    """

    def __init__(self, args: Sequence[str], log_path: str) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> FloorProcess:
        """Raises: RuntimeError if the server did not say it listens within 30 s."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks._rpc_floor", *self.args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                env=env, preexec_fn=_pdeathsig())
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout, START_TIMEOUT_S)
        try:
            event = json.loads(line)
            port = int(event["port"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError(f"floor server {self.args} did not start: {line!r}; see "
                               f"{self.log_path}") from None
        self.address = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> FloorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_line(stream: IO[bytes], timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    buf = b""
    fd = stream.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


def stop_all(processes: Iterable[FloorProcess]) -> None:
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.stop()
