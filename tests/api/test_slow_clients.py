"""Slow clients cannot hold the server: header deadline and per-address cap (chatbot/connections.py).

A real uvicorn server with the options ``chatbot serve`` passes (``uvicorn_options``), tight bounds
so that nothing here waits long: headers within 3 s, 20 sockets per address. Not a timing test: the
deadlines are checked with generous slack, the caps by counting.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from chatbot.config import Settings
from chatbot.connections import guarded_protocol, limits_from, uvicorn_options
from chatbot.server.app import create_app
from tests.support.app import module_settings
from tests.support.services import free_port

HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 2.0
PER_IP = 20
ATTACKER = "127.0.0.1"
OTHER = "127.0.0.2"  # another loopback address: a different client as far as the server can tell


class Server:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        options = uvicorn_options(settings)
        self.protocol = options["http"]
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_config=None, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 600  # models load in the background
        while time.monotonic() < deadline:
            try:
                if get(self.port, "/healthz", OTHER).startswith(b"HTTP/1.1 200"):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("the server did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def connect(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def get(port: int, path: str, source: str) -> bytes:
    with connect(port, source) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sent until it closed the socket (raises socket.timeout if it does not)."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.fixture(scope="module")
def server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = module_settings(
        built_index,
        tmp_path_factory.mktemp("slow"),
        generation_enabled=False,
        http_header_timeout_s=HEADER_TIMEOUT,
        http_body_timeout_s=BODY_TIMEOUT,
        max_connections_per_ip=PER_IP,
        rate_limit_enabled=False,
    )
    running = Server(settings)
    running.start()
    yield running
    running.stop()


def test_settings_reach_the_limits() -> None:
    settings = Settings(max_connections=50_000, max_connections_per_ip=7, connection_limit_exempt_ips=["10.0.0.2"])
    limits = limits_from(settings, open_file_limit=1024)
    assert limits.max_connections == 1024 - 256  # below the open-file limit, whatever the setting says
    assert limits.max_per_ip == 7 and limits.exempt == {"10.0.0.2"}
    assert uvicorn_options(settings)["http"].__name__.startswith("Guarded")


def test_unfinished_headers_are_closed_within_the_bound(server: Server) -> None:
    sock = connect(server.port, OTHER)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    started = time.monotonic()
    reply = closed_by_server(sock)
    assert time.monotonic() - started < HEADER_TIMEOUT + 5
    assert reply.startswith(b"HTTP/1.1 408")
    sock.close()


def test_a_trickle_of_header_lines_does_not_extend_the_deadline(server: Server) -> None:
    sock = connect(server.port, OTHER)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    closed = False
    for n in range(80):  # one header line every 0.25 s: each would reset a plain idle timer
        try:
            sock.sendall(f"X-Trickle-{n}: a\r\n".encode())
        except OSError:  # reset or broken pipe: the server closed it
            closed = True
            break
        time.sleep(0.25)
        if _peek_closed(sock):
            closed = True
            break
    assert closed, "a trickling client kept its socket for 20 s"
    assert time.monotonic() - started < HEADER_TIMEOUT + 5
    sock.close()


def test_a_body_that_never_completes_is_closed_within_the_bound(server: Server) -> None:
    sock = connect(server.port, OTHER)
    sock.sendall(b"POST /v1/nlu/parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    sock.sendall(b'Content-Length: 100\r\n\r\n{"text": "my card')  # 16 of the 100 bytes promised
    started = time.monotonic()
    closed_by_server(sock)
    assert time.monotonic() - started < BODY_TIMEOUT + 5
    sock.close()


def _peek_closed(sock: socket.socket) -> bool:
    """Whether the server has answered or closed (without waiting)."""
    try:
        sock.recv(4096, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        return True  # a 408/503 or the end of the stream
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_many_held_sockets_from_one_address_leave_the_others_served(server: Server) -> None:
    held = []
    try:
        started = time.monotonic()
        for _ in range(200):
            sock = connect(server.port, ATTACKER)
            sock.sendall(b"GET / HTTP/1.1\r\n")  # headers never finished
            held.append(sock)
        for _ in range(5):  # while the attacker's sockets are held, another client is served
            assert get(server.port, "/healthz", OTHER).startswith(b"HTTP/1.1 200")
        within_deadline = time.monotonic() - started < HEADER_TIMEOUT
        # Over the cap: a 503 at once. Within it: held until the header deadline, then a 408.
        replies = [s.recv(64) for s in held]
        refused = [r for r in replies if r.startswith(b"HTTP/1.1 503")]
        timed_out = [r for r in replies if r.startswith(b"HTTP/1.1 408")]
        assert len(refused) + len(timed_out) == len(held), replies
        if within_deadline:  # (on a machine too slow for that, a slot freed by a 408 may be taken again)
            assert len(timed_out) == PER_IP, "exactly the per-address cap was admitted"
        assert len(timed_out) >= PER_IP and refused
    finally:
        for sock in held:
            sock.close()


def test_the_slots_are_released_when_sockets_close(server: Server) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the previous test's sockets are gone from the count
        if get(server.port, "/healthz", ATTACKER).startswith(b"HTTP/1.1 200"):
            return
        time.sleep(0.2)
    raise AssertionError("the attacker's address stayed blocked after its sockets closed")


def test_protocol_wraps_h11_too() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    settings = Settings()
    assert issubclass(guarded_protocol(H11Protocol, limits_from(settings)), H11Protocol)


def test_websockets_pass_the_guard_and_outlive_the_header_deadline(server: Server) -> None:
    from websockets.sync.client import connect as ws_connect

    with ws_connect(f"ws://127.0.0.1:{server.port}/ws/chat", open_timeout=10) as ws:
        assert '"ready"' in str(ws.recv(timeout=10))
        time.sleep(HEADER_TIMEOUT + 0.5)  # past the header deadline: an upgraded socket is not cut by it
        ws.send("not json")
        assert '"invalid_frame"' in str(ws.recv(timeout=10))
