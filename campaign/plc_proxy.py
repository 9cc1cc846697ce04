"""A TCP fault proxy on loopback, between the interlock's stop writer and a real PLC server.

Modes (``set_mode`` returns once the proxy's thread has applied the new one):

- ``PASS``: relay both ways. A client whose upstream refuses (the PLC is down) is reset.
- ``REFUSE``: nothing listens: connects are refused (ECONNREFUSED); open connections close.
- ``RESET``: open connections are reset (close with SO_LINGER 0, an RST on the wire); new
  ones are accepted and reset at once.
- ``FREEZE``: connections stay open and new ones are accepted; every byte is read and
  dropped, nothing is answered and nothing reaches the PLC. Leaving FREEZE resets the
  connections that were accepted while frozen (their opening bytes are gone).

``drop(rst=...)`` closes the open connections once (RST or an orderly close) and keeps the
mode: the reconnect soak's disconnect. ``accepted`` counts connections accepted.
``reply_filter``, when given, makes one filter per connection that every byte from the PLC
passes through (it may hold bytes back until a message is complete, and rewrite them).

Campaign shell: one thread, started by ``__enter__`` and joined by ``__exit__``. It binds
127.0.0.1 only and refuses an upstream that is not on the loopback network.
"""

from __future__ import annotations

import ipaddress
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType

ReplyFilter = Callable[[bytes], bytes]

CHUNK = 65536
COMMAND_WAIT_S = 5.0
UPSTREAM_CONNECT_S = 1.0
SEND_TIMEOUT_S = 1.0


class Mode(StrEnum):
    PASS = "pass"
    REFUSE = "refuse"
    RESET = "reset"
    FREEZE = "freeze"


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _check_loopback(address: tuple[str, int]) -> None:
    if not ipaddress.ip_address(address[0]).is_loopback:
        raise ValueError(f"the fault proxy relays to loopback only, not {address[0]}")


class _Command:
    __slots__ = ("fn", "done", "error")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: Exception | None = None


class FaultProxy:
    def __init__(self, upstream: tuple[str, int],
                 reply_filter: Callable[[], ReplyFilter] | None = None) -> None:
        _check_loopback(upstream)
        self._upstream = upstream
        self._reply_filter = reply_filter
        self._filters: dict[socket.socket, ReplyFilter] = {}  # upstream socket -> its filter
        self._mode = Mode.PASS
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._peer: dict[socket.socket, socket.socket | None] = {}  # socket -> its other end
        self._clients: set[socket.socket] = set()
        self._sel = selectors.DefaultSelector()
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control (any thread) --
    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def set_mode(self, mode: Mode) -> None:
        self._call(lambda: self._apply(mode))

    def set_upstream(self, upstream: tuple[str, int]) -> None:
        _check_loopback(upstream)

        def apply() -> None:
            self._upstream = upstream
        self._call(apply)

    def drop(self, *, rst: bool) -> None:
        self._call(lambda: self._close_all(rst=rst))

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the proxy's thread; what it raised is raised here (the proxy runs on)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the fault proxy is not running")
        command = _Command(fn)
        self._commands.put(command)
        self._wake_w.send(b"x")
        if not command.done.wait(COMMAND_WAIT_S):
            raise RuntimeError("the fault proxy did not apply a command in time")
        if command.error is not None:
            raise command.error

    # -- lifecycle --
    def __enter__(self) -> "FaultProxy":
        self._listen(0)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="plc-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(10)
        self._close_all(rst=False)
        self._unlisten()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the proxy's thread --
    def _listen(self, port: int) -> None:
        listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: the port comes back
        listener.setblocking(False)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        if self._thread is not None:
            self._sel.register(listener, selectors.EVENT_READ)

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                self._sel.unregister(listener)
            except (KeyError, ValueError):
                pass
            listener.close()

    def _apply(self, mode: Mode) -> None:
        old, self._mode = self._mode, mode
        if mode is Mode.REFUSE:
            self._unlisten()
            self._close_all(rst=False)
        elif mode is Mode.RESET:
            self._close_all(rst=True)
        elif old is Mode.FREEZE:
            for client in [c for c in self._clients if self._peer.get(c) is None]:
                self._close_pair(client, rst=True)
        if old is Mode.REFUSE and mode is not Mode.REFUSE:
            self._listen(self.port)

    def _run(self) -> None:
        if self._listener is not None:
            self._sel.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _events in self._sel.select(timeout=0.5):
                sock = key.fileobj
                if not isinstance(sock, socket.socket):
                    continue
                if sock is self._wake_r:
                    self._run_commands()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peer:
                    self._relay(sock)

    def _run_commands(self) -> None:
        try:
            self._wake_r.recv(CHUNK)
        except OSError:
            pass
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command.fn()
            except Exception as e:  # noqa: BLE001 - handed to the caller, e.g. the port taken meanwhile
                command.error = e
            finally:
                command.done.set()

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        try:
            client, _addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.accepted += 1
        if self._mode is Mode.RESET:
            _reset(client)
            return
        upstream: socket.socket | None = None
        if self._mode is Mode.PASS:
            try:
                upstream = socket.create_connection(self._upstream, timeout=UPSTREAM_CONNECT_S)
            except OSError:
                _reset(client)  # the PLC is down: the client sees its connection fail
                return
            upstream.settimeout(SEND_TIMEOUT_S)
            if self._reply_filter is not None:
                self._filters[upstream] = self._reply_filter()
            self._peer[upstream] = client
            self._sel.register(upstream, selectors.EVENT_READ)
        client.settimeout(SEND_TIMEOUT_S)
        self._peer[client] = upstream
        self._clients.add(client)
        self._sel.register(client, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self._close_pair(sock, rst=False)
            return
        other = self._peer.get(sock)
        if self._mode is Mode.FREEZE or other is None:
            return  # swallowed
        reply_filter = self._filters.get(sock)
        if reply_filter is not None:
            data = reply_filter(data)
            if not data:
                return
        try:
            other.sendall(data)
        except OSError:
            self._close_pair(sock, rst=False)

    def _close_pair(self, sock: socket.socket, *, rst: bool) -> None:
        other = self._peer.pop(sock, None)
        ends = [sock] if other is None else [sock, other]
        if other is not None:
            self._peer.pop(other, None)
        for s in ends:
            self._filters.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            if s in self._clients:
                self._clients.discard(s)
                if rst:
                    _reset(s)
                    continue
            s.close()

    def _close_all(self, *, rst: bool) -> None:
        for client in list(self._clients):
            self._close_pair(client, rst=rst)
