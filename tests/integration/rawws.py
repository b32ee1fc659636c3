"""A blocking, hand-rolled WebSocket client for tests that need control of the TCP socket
(a reader that stops reading, a peer that never answers pings)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any

from .harness import TOKEN


class RawSocket:
    def __init__(self, port: int, *, rcvbuf: int | None = None, token: str = TOKEN) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = bytearray()  # appended in place: reading tens of MB stays linear
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, rest = bytes(self.buf).split(b"\r\n\r\n", 1)
        self.buf = bytearray(rest)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self.buf += self._recv()

    def send_json(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def frame(self) -> tuple[int, bytes]:
        self._need(2)
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        offset = 2
        if n == 126:
            self._need(4)
            n, offset = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, offset = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(offset + n)
        payload = bytes(self.buf[offset:offset + n])
        del self.buf[:offset + n]
        return opcode, payload

    def read_json(self, timeout: float = 10) -> dict[str, Any]:
        """The next text frame as JSON (control frames are skipped, pings go unanswered)."""
        self.sock.settimeout(timeout)
        while True:
            opcode, payload = self.frame()
            if opcode == 0x8:
                raise ConnectionError("close frame")
            if opcode == 0x1:
                return json.loads(payload)

    def read_until(self, predicate: Any, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            message = self.read_json(max(0.1, deadline - time.monotonic()))
            if predicate(message):
                return message, seen
            seen.append(message)

    def close(self) -> None:
        self.sock.close()
        self.buf = bytearray()  # a bytearray keeps the capacity of what it once held
