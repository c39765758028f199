"""A TCP proxy between a PostgreSQL client and server that can lose one COMMIT's reply.

It parses the client's side of the wire protocol (startup packets, then
``type byte + int32 length`` messages). Once :meth:`LosingProxy.arm` is
called, the next simple-query ``COMMIT`` is forwarded to the server; the
server's replies on that connection are swallowed until its
``CommandComplete("COMMIT")`` has arrived (so the transaction is known to be
committed), then the client's connection is cut: the client sees the
connection die without learning the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

_UNTYPED_REQUESTS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: a StartupMessage follows
_COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class LosingProxy:
    """``async with LosingProxy(host, port) as proxy``: listen on ``proxy.port`` (loopback)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.commits_lost = 0
        self._armed = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once a COMMIT's reply has been swallowed and its client cut off.
        self.lost = asyncio.Event()

    def arm(self) -> None:
        """Lose the reply of the next COMMIT any client sends."""
        self._armed = True

    async def __aenter__(self) -> LosingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        swallowing = asyncio.Event()
        upward = asyncio.create_task(self._client_to_server(client_reader, server_writer, swallowing))
        downward = asyncio.create_task(self._server_to_client(server_reader, client_writer, swallowing))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in (upward, downward):
                pump.cancel()
            for writer in (client_writer, server_writer):
                writer.transport.abort()
            self._tasks.discard(task)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, swallowing: asyncio.Event
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:  # untyped startup packets
                head = await reader.readexactly(8)
                length, code = struct.unpack("!II", head)
                writer.write(head + await reader.readexactly(length - 8))
                await writer.drain()
                if code not in _UNTYPED_REQUESTS:
                    break
            while True:
                head = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!I", head[1:])[0] - 4)
                if self._armed and head[:1] == b"Q" and body.lstrip().upper().startswith(b"COMMIT"):
                    self._armed = False
                    swallowing.set()
                writer.write(head + body)
                await writer.drain()

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, swallowing: asyncio.Event
    ) -> None:
        swallowed = b""
        with contextlib.suppress(ConnectionError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if not swallowing.is_set():
                    writer.write(data)
                    await writer.drain()
                    continue
                swallowed += data
                if _COMMIT_COMPLETE in swallowed:
                    # The server committed; the client never hears it.
                    self.commits_lost += 1
                    self.lost.set()
                    return
