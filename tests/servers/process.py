"""One throwaway server process: its own process group on a free loopback port, a log file,
a readiness probe with a deadline, and a stop that takes the whole group down.

Every started process is remembered until it is stopped, and ``stop_all`` (registered with
``atexit``, and called by the pytest plugin at session end and on SIGTERM) stops what is left,
so an interrupted run does not leave servers behind.

    proc = ServerProcess("Redis", ["redis-server", "--port", str(port)], log_path=tmp / "log")
    proc.start()
    proc.wait_ready(lambda: port_open(port), timeout=60)
    ...
    proc.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Log lines a server prints when another process took its port between free_port() and bind.
_PORT_TAKEN_MARKERS = ("address already in use", "eaddrinuse", "bindexception", "port is in use")


class ServerStartError(RuntimeError):
    """A server could not be started; the message names it, says why, and ends with its log."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now.

    >>> 1024 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers HTTP at all (any status; TLS certificates are not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer
    except (OSError, ValueError, http.client.HTTPException):  # not up, or half up
        return False


_LIVE: list[ServerProcess] = []
_LIVE_LOCK = threading.Lock()


class ServerProcess:
    """A server started in its own session (so in its own process group), logging to a file."""

    def __init__(
        self,
        title: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.title = title
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.user = user
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process; raise ServerStartError naming the server if it cannot be run."""
        argv = self.argv
        # The kernel sends SIGTERM to the server if this thread dies without cleaning up (a
        # SIGKILLed pytest). Only from the main thread: the signal follows the *thread*.
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    user=self.user,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerStartError(
                    f"{self.title}: could not run {self.argv[0]!r}: {exc}"
                ) from exc
        with _LIVE_LOCK:
            _LIVE.append(self)

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> float:
        """Poll ``probe`` until it is true; return the seconds waited.

        Raises ServerStartError (after stopping the process) if the process exits first or the
        deadline passes; the message carries the tail of the server's log."""
        assert self.popen is not None, "start() first"
        started = time.monotonic()
        delay = 0.05
        while True:
            code = self.popen.poll()
            if code is not None:
                self.stop()
                raise ServerStartError(
                    f"{self.title} exited with code {code} before it was ready"
                    f" (command: {' '.join(self.argv)})\n{self.log_report()}"
                )
            if probe():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                self.stop()
                raise ServerStartError(
                    f"{self.title} did not answer within {timeout:.0f} s"
                    f" (command: {' '.join(self.argv)})\n{self.log_report()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def port_was_taken(self) -> bool:
        """True when the log says the port was already in use (a race with another process)."""
        text = self.log_text().lower()
        return any(marker in text for marker in _PORT_TAKEN_MARKERS)

    def stop(self, grace: float = 15.0) -> None:
        """Signal the whole process group, wait up to ``grace`` seconds, then SIGKILL it."""
        popen = self.popen
        if popen is None:
            return
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)
        pgid = popen.pid  # start_new_session: the leader's pid is the group id
        _signal_group(pgid, self.stop_signal)
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        # Children the leader did not take down (a wrapper script's JVM) go too.
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_report(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the log, framed, with the log's path."""
        tail = self.log_text().splitlines()[-lines:]
        body = "\n".join(f"    {line}" for line in tail) or "    (empty)"
        return f"--- last {len(tail)} lines of {self.log_path} ---\n{body}\n--- end of log ---"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process is in the group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def stop_all() -> None:
    """Stop every server process still running (at exit, at session end, on SIGTERM)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in reversed(live):
        with contextlib.suppress(Exception):
            proc.stop(grace=10.0)


atexit.register(stop_all)
