"""Real node processes for tests: started on 127.0.0.1 with an ephemeral port (or in a
network namespace of ``tests/support/netns.py``), always reaped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 30.0


class NodeProcess:
    """``python -m cairn.node`` in a subprocess; its JSON log lines are kept in ``log``."""

    def __init__(self, data: Path | Sequence[Path], *, node_id: int = 1, listen: str =
                 "127.0.0.1:0", extra: Sequence[str] = (), env: dict[str, str] | None = None,
                 netns: str | None = None) -> None:
        self.data = [data] if isinstance(data, Path) else list(data)
        # Run inside this network namespace (``ip netns`` name). ``nsenter`` execs, so
        # ``pid`` is the node's python itself; see netns.py for why not ``ip netns exec``.
        self.netns = netns
        self.node_id = node_id
        self.listen = listen
        self.extra = list(extra)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[dict[str, object]] = []
        self.address = ""
        self._ready = threading.Event()

    def start(self) -> NodeProcess:
        args = [sys.executable, "-m", "cairn.node", "--node-id", str(self.node_id),
                "--listen", self.listen, *self.extra]
        for d in self.data:
            d.mkdir(parents=True, exist_ok=True)
            args += ["--data", str(d)]
        if self.netns is not None:
            args = ["nsenter", f"--net=/run/netns/{self.netns}", *args]
        env = dict(os.environ, **(self.env or {}))
        self._ready.clear()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        threading.Thread(target=self._read_log, args=(self.proc,), daemon=True).start()
        if not self.listen.endswith(":0"):
            self.address = self.listen  # known already: no need to see the log line
            self._ready.set()
        if not self._ready.wait(START_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"node did not start: {self.log[-5:]}")
        self.wait_serving()
        return self

    def _read_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "non-json", "text": raw.decode(errors="replace")}
            self.log.append(line)
            if line.get("event") == "listening":
                self.address = str(line["address"])
                if self.listen.endswith(":0"):
                    self.listen = self.address  # restart on the same port
                self._ready.set()
        self._ready.set()

    def wait_serving(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                    raise RuntimeError(f"node not serving: {self.log[-5:]}")
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
