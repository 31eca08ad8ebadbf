"""A small asyncio TCP proxy for fault tests: loopback only, bounded (at most ``max_conns``
connections), stopped by the test. It can add latency to the server's replies, cut every live
connection, refuse new ones (accept then reset), blackhole (accept, forward nothing), and cut a
connection right after the client sent a marker (say ``b"COMMIT"``), dropping the server's
reply: the server got the request, the client never hears back (``cut_after``); or cut it in
the middle of that request, so the server gets only part of it (``cut_within``). A marker is
bytes to find in what the client sends, an int: that many bytes sent on one connection since
its last reply (a large request, when the protocol is encrypted and no marker can be read), or
an ``NthRequest``: the n-th request since it was armed, on any connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


@dataclass
class NthRequest:
    """A marker for TLS traffic: the ``n``-th request the clients start, over every
    connection, counted from when it is armed. A request: what a client sends after the server
    last answered it, when it holds a TLS application-data record of at least 100 bytes (not
    the handshake, whose Finished is a short application-data record in TLS 1.3, nor an alert
    such as a closing connection's close_notify)."""

    n: int
    seen: int = 0

    @staticmethod
    def starts(data: bytes) -> bool:
        at = 0
        while at + 5 <= len(data):  # TLS records: type, version (2 bytes), length (2 bytes)
            length = int.from_bytes(data[at + 3 : at + 5], "big")
            if data[at] == 0x17 and length >= 100:
                return True
            at += 5 + length
        return False


Marker = bytes | int | NthRequest


class TcpProxy:
    """``127.0.0.1:<port>`` forwarding to ``127.0.0.1:<target_port>``."""

    def __init__(self, target_port: int, *, max_conns: int = 64) -> None:
        self.target_port = target_port
        self.max_conns = max_conns
        self.port = 0
        self.latency = 0.0  # seconds added before each chunk of the server's replies
        self.refusing = False
        self.blackhole = False
        self.cut_after: Marker | None = None  # marker armed by the test
        self.cut_within: Marker | None = None
        self.cuts_done = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def cut(self) -> None:
        """Reset every live connection (both sides)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refusing or len(self._writers) >= self.max_conns:
            client_w.transport.abort()
            return
        if self.blackhole:
            self._writers.add(client_w)
            with contextlib.suppress(Exception):
                while await client_r.read(65536):
                    pass  # swallow: nothing is forwarded, nothing answers
            return
        try:
            server_r, server_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        dropping = asyncio.Event()  # set when the next reply must be dropped and all cut
        sent = [0]  # bytes the client sent since the server last replied
        counted = [False]  # an NthRequest counted what the client sent since then

        def hit(marker: Marker | None, data: bytes) -> bool:
            if marker is None:
                return False
            if isinstance(marker, NthRequest):
                return marker.seen >= marker.n and marker.starts(data)
            if isinstance(marker, int):
                return sent[0] >= marker
            return marker in data

        async def upstream() -> None:
            while data := await client_r.read(65536):
                for marker in (self.cut_within, self.cut_after):
                    # a request starts: the first of its chunks since the server last answered
                    if isinstance(marker, NthRequest) and not counted[0] and marker.starts(data):
                        marker.seen += 1
                        counted[0] = True
                sent[0] += len(data)
                if hit(self.cut_within, data):
                    self.cut_within = None
                    self.cuts_done += 1
                    server_w.write(data[: len(data) // 2])
                    await server_w.drain()
                    client_w.transport.abort()
                    server_w.transport.abort()
                    return
                server_w.write(data)
                await server_w.drain()
                if hit(self.cut_after, data):
                    self.cut_after = None
                    dropping.set()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                sent[0] = 0
                counted[0] = False
                if dropping.is_set():
                    self.cuts_done += 1
                    client_w.transport.abort()
                    server_w.transport.abort()
                    return
                if self.latency:
                    await asyncio.sleep(self.latency)
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, server_w):
                writer.transport.abort()
                self._writers.discard(writer)
