"""A 3-node Redis Cluster on loopback: three ``redis-server --cluster-enabled yes`` (no
persistence) joined by ``redis-cli --cluster create --cluster-replicas 0``. A node can be
stopped (``kill_node``) and started again on the same port with its cluster config file
(``restart_node``): it rejoins with its slots and no data. It cannot start: ServerStartError,
which the fixture turns into a loud failure.

URL: ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .base import NATIVE_START_TIMEOUT, require_executable, start_timeout
from .process import LOOPBACK, ServerProcess, ServerStartError, free_port, port_open
from .redis import answers_ping

NODES = 3
NODE_TIMEOUT_MS = 1000  # how soon the others mark a dead node failed (and see it come back)


def cluster_port(taken: list[int]) -> int:
    """A free port for a cluster node: at most 55535 (its cluster bus listens on port + 10000,
    which Redis refuses above 65535), with that bus port free too."""
    while True:
        port = free_port()
        if port <= 55535 and port not in taken and not port_open(port + 10000):
            return port


def cluster_state(port: int) -> str:
    """``cluster_state`` (ok / fail) as node ``port`` sees it, "" when it does not answer."""
    try:
        out = subprocess.run(
            ["redis-cli", "-h", LOOPBACK, "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in out.splitlines():
        if line.startswith("cluster_state:"):
            return line.split(":", 1)[1].strip()
    return ""


class RedisClusterBed:
    """Three cluster nodes in one temp dir; ``start()``, ``kill_node(i)``, ``restart_node(i)``,
    ``stop()``."""

    title = "Redis Cluster"

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.processes: list[ServerProcess | None] = []
        self.workdir: Path | None = None
        self._binary = ""

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{p}" for p in self.ports)

    def start(self) -> None:
        self._binary = require_executable(
            self.title,
            shutil.which("redis-server"),
            "redis-server",
            "apt-get install -y redis-server; scripts/install-test-deps does it",
        )
        cli = require_executable(
            self.title, shutil.which("redis-cli"), "redis-cli", "it comes with redis-server"
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="asyncdb-test-redis-cluster-"))
        for i in range(NODES):
            self.ports.append(cluster_port(self.ports))
            self.processes.append(None)
            self._launch(i)
        create = [
            cli,
            "--cluster",
            "create",
            *(f"{LOOPBACK}:{p}" for p in self.ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ServerStartError(
                f"{self.title}: {' '.join(create)} failed ({done.returncode}):"
                f" {done.stdout[-2000:]} {done.stderr[-2000:]}"
            )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` (all slots served)."""
        deadline = time.monotonic() + start_timeout(timeout)
        while not all(cluster_state(p) == "ok" for p in self.ports):
            if time.monotonic() > deadline:
                states = {p: cluster_state(p) for p in self.ports}
                raise ServerStartError(f"{self.title}: not ok within {timeout:.0f} s: {states}")
            time.sleep(0.1)

    def _launch(self, i: int) -> None:
        assert self.workdir is not None
        port = self.ports[i]
        argv = [
            self._binary,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        process = ServerProcess(
            f"{self.title} node {port}",
            argv,
            log_path=self.workdir / f"node-{port}.log",
            cwd=self.workdir,
        )
        process.start()
        process.wait_ready(lambda: answers_ping(port), start_timeout(NATIVE_START_TIMEOUT))
        self.processes[i] = process

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` (no shutdown: it dies as a crashed machine would)."""
        process = self.processes[i]
        assert process is not None and process.popen is not None
        os.killpg(process.popen.pid, signal.SIGKILL)
        process.stop()  # reaps it
        self.processes[i] = None

    def restart_node(self, i: int) -> None:
        """Start node ``i`` again on its port (it rejoins from its config file, empty)."""
        self._launch(i)
        self.wait_ok()

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                process.stop()
                self.processes[i] = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def describe(self) -> str:
        return f"{self.title}: {NODES} nodes on {LOOPBACK}:{','.join(map(str, self.ports))}"
