"""A loopback TCP proxy the test controls: cut the path (as a dead network would) and restore it.

``cut()`` stops forwarding in both directions without closing anything, so the browser's socket
stays open and silent (like Wi-Fi gone); new connections are accepted and held the same way.
``cut(reset=True)`` closes every connection instead. ``restore()`` forwards again; connections
held while cut are dropped then, so that only fresh ones carry traffic.
"""

from __future__ import annotations

import socket
import threading

from tests.support.server import free_port


class TcpProxy:
    def __init__(self, target_port: int, *, listen_port: int | None = None) -> None:
        self.target_port = target_port
        self.port = listen_port or free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    # -- control ---------------------------------------------------------------------------------

    def cut(self, *, reset: bool = False) -> None:
        self._open.clear()
        if reset:
            self._drop_all()

    def restore(self) -> None:
        self._drop_all()  # whatever was held while cut is stale now
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._drop_all()

    # -- forwarding ------------------------------------------------------------------------------

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                if sock is not None:
                    # shutdown first: a close() alone waits for the pump blocked in recv().
                    for end in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
                        try:
                            end()
                        except OSError:
                            pass

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        entry = (client, None)
        with self._lock:
            self._pairs.append(entry)
        if not self._open.is_set():
            return  # held open and silent until restore() drops it
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            if entry in self._pairs:
                self._pairs.remove(entry)
                self._pairs.append((client, upstream))
            else:
                upstream.close()
                return
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                # While cut, bytes are read and thrown away: nothing gets through and the
                # sender sees no error, as on a path whose packets are lost.
                if self._open.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
