"""The training sandbox hands over each answer as soon as it is written (TCP_NODELAY on every connection).

Werkzeug's server waits about 10 ms after each response for stray request bytes before it closes the connection.
Without TCP_NODELAY the kernel held the response's last small write back (Nagle's algorithm, waiting for the
client's delayed acknowledgement) until that close, so every request to the training suppliers took about 10 ms
longer than the supplier's work: the new user's practice orders, and the sign-and-send benchmark's floor (a bare
POST), which that wait inflated from about 9 to about 21 ms. The test reads whole answers over real TLS and finds
the connection still open after each: the answer came before the close, not with it.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlparse


def _answer_then_still_open(sandbox, path: str) -> tuple[bytes, bool]:
    where = urlparse(sandbox.base_url)
    context = ssl.create_default_context(cafile=str(sandbox.tls_bundle))
    with socket.create_connection((where.hostname, where.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=where.hostname) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {where.hostname}\r\n\r\n".encode("ascii"))
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = tls.recv(65536)
            assert chunk, f"closed before the headers: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = tls.recv(65536)
            assert chunk, f"closed before the whole answer: {len(body)} of {length} bytes"
            body += chunk
        tls.setblocking(False)
        try:
            still_open = tls.recv(1) != b""  # b"": the server had already closed when the answer arrived
        except ssl.SSLWantReadError:
            still_open = True  # nothing more yet: the answer came while the connection was open
        return head.split(b"\r\n", 1)[0], still_open


def test_each_answer_arrives_before_the_server_closes_the_connection(sandbox):
    for path in ("/portal/registrations", "/no-such-page", "/portal/registrations", "/no-such-page"):
        status, still_open = _answer_then_still_open(sandbox, path)
        assert status.startswith(b"HTTP/1.1 "), status
        assert still_open, f"{path}: the answer ({status.decode()}) only came when the server closed"
