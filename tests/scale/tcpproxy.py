"""A tiny TCP proxy on 127.0.0.1 that tests can cut and restore, to take a database or a broker
away from a process without touching the server itself.

``cut()`` closes every proxied connection and stops listening, so new connections are refused at
once (a server that went away); ``restore()`` listens again on the same port. Given several target
ports it spreads connections over them in turn: a layer-4 round-robin balancer standing in for a
reverse proxy in front of API replicas.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(
        self, target_port: int | list[int], *, target_host: str = "127.0.0.1", listen: bool = True
    ) -> None:
        ports = target_port if isinstance(target_port, list) else [target_port]
        self.targets = [(target_host, port) for port in ports]
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self.accepted = 0
        self._turn = 0
        if listen:
            self.restore()

    def restore(self) -> None:
        """Start (or resume) accepting connections."""
        with self._lock:
            if self._server is not None:
                return
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", self.port))
            server.listen(128)
            self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, set()
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    close = cut

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            target = self.targets[self._turn % len(self.targets)]
            self._turn += 1
            try:
                upstream = socket.create_connection(target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns.update((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
