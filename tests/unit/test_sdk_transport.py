"""The keep-alive transport against a real local HTTP server in a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trainmon.sdk.transport import HttpTransport, TransportError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list[tuple[str, int]] = []  # noqa: RUF012 - shared on purpose, reset per test
    auth: list[str | None] = []  # noqa: RUF012
    drop_after_answer = False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        type(self).peers.append(self.client_address)
        type(self).auth.append(self.headers.get("Authorization"))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # Like a server whose idle keep-alive timer fired: close without saying so.
        self.close_connection = type(self).drop_after_answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    Handler.peers = []
    Handler.auth = []
    Handler.drop_after_answer = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_keep_alive_nodelay_and_token(http_server: ThreadingHTTPServer) -> None:
    transport = HttpTransport(url_of(http_server), "tok")
    for _ in range(3):
        assert transport("POST", "/x", b"{}").status == 200
    assert len(set(Handler.peers)) == 1  # one connection reused
    assert Handler.auth == ["Bearer tok"] * 3
    assert transport._conn is not None
    sock = transport._conn.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    transport.close()


def test_reconnects_transparently_after_the_server_dropped_it(
    http_server: ThreadingHTTPServer,
) -> None:
    Handler.drop_after_answer = True
    transport = HttpTransport(url_of(http_server), None)
    for _ in range(3):
        assert transport("POST", "/x", b"{}").status == 200
    assert Handler.auth == [None] * 3
    transport.close()


def test_unreachable_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}", None, timeout=2)
    with pytest.raises(TransportError):
        transport("POST", "/x", b"{}")


def test_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpTransport("ftp://host", None)
