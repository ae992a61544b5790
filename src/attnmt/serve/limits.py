"""What one request may ask of the server, and a body-size guard that applies it early.

:class:`BodyLimit` is plain ASGI middleware: a request whose ``Content-Length`` is over
the limit gets 413 before its body is read, and a body streamed without a length is
cut off as soon as it passes the limit — a 100 MB upload is never read in full or
parsed. A body within the limit is read first and handed on whole.
:class:`HeaderTimeout` closes a connection that never finishes its request's headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Limits:
    max_chars: int = 1000        # characters per text
    max_texts: int = 64          # texts per request
    max_beam: int = 16
    timeout_s: float = 30.0      # a request not answered by then gets 503; its work stops
    max_work: int = 16384        # source tokens x beam per request
    max_constraints: int = 8     # constraint phrases per text

    @property
    def max_body_bytes(self) -> int:
        """Room for the largest valid request: each text, its prefix and its constraint
        phrases at their longest, with JSON spelling a character in 6 bytes."""
        return self.max_texts * self.max_chars * 6 * (2 + self.max_constraints) + 16384


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send) -> None:
        body = json.dumps({"error": f"the request body is over {self.max_bytes} bytes; send "
                           "fewer or shorter texts", "field": "body"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._reject(send)
        chunks, received, more = [], 0, True       # read (at most the limit), then replay
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return                                # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                return await self._reject(send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class HeaderTimeout:
    """uvicorn's HTTP protocol with a deadline for a request's headers: a connection that
    opens and never finishes them is closed (uvicorn itself only times out idle
    keep-alive connections)."""

    seconds = 10.0

    @classmethod
    def protocol(cls):
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class Protocol(H11Protocol):
            def connection_made(self, transport):
                super().connection_made(transport)
                self._header_timer = self.loop.call_later(cls.seconds, self._header_timeout)

            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                if self._header_timer and self.cycle and not self.cycle.response_complete:
                    self._header_timer.cancel()          # headers complete: a request runs
                    self._header_timer = None

            def on_response_complete(self) -> None:
                super().on_response_complete()
                if self._header_timer is None and not self.transport.is_closing():
                    self._header_timer = self.loop.call_later(cls.seconds,
                                                              self._header_timeout)

            def _header_timeout(self) -> None:
                self._header_timer = None
                if not self.transport.is_closing():
                    self.transport.close()

            def connection_lost(self, exc) -> None:
                if self._header_timer:
                    self._header_timer.cancel()
                super().connection_lost(exc)

        return Protocol
