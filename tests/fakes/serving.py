"""What every fake server shares: a ThreadingHTTPServer on 127.0.0.1 (a random port) in a daemon
thread, whose handler class reaches the fake through its ``api`` attribute."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ServesHttp:
    """Mixin for the fakes (dataclasses with ``_server`` and ``_thread`` fields)."""

    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None

    def _serve(
        self, server_class: type[ThreadingHTTPServer], handler_class: type[BaseHTTPRequestHandler]
    ) -> None:
        handler = type("Handler", (handler_class,), {"api": self})
        self._server = server_class(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return int(self._server.server_address[1])
