"""A minimal HTTP/1.1 keep-alive client for the publish endpoint (one request at a time)."""

from __future__ import annotations

import asyncio


class Publisher:
    """POSTs bodies to ``/publish/<kind>`` over one kept-alive connection."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> Publisher:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def post(self, body: bytes, kind: str = "async") -> None:
        """POST ``body``, reconnecting once if the server closed the idle connection meanwhile.

        Servers close kept-alive connections idle for a few seconds (uvicorn: 5 s), and
        connecting thousands of clients between two publishes takes longer than that.
        """
        try:
            await self._post(body, kind)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            await self.open()
            await self._post(body, kind)

    async def _post(self, body: bytes, kind: str) -> None:
        """Send one POST and read its whole response; ``RuntimeError`` unless it is a 200."""
        head = (
            f"POST /publish/{kind} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = headers.split(b" ", 2)[1]
        lowered = headers.lower()
        if b"transfer-encoding: chunked" in lowered:
            await self._skip_chunks()
        else:
            for line in lowered.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    await self.reader.readexactly(int(line[15:]))
        if status != b"200":
            raise RuntimeError(f"publish answered {status.decode()}: {headers[:200]!r}")

    async def _skip_chunks(self) -> None:
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return

    def close(self) -> None:
        self.writer.close()
