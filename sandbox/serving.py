"""Serving a sandbox's HTTP server from a daemon thread, the same way for every sandbox."""

import threading
from socketserver import BaseServer
from typing import Self


class ServedInThread:
    """Mixin for a sandbox that owns ``self._httpd``; ``thread_name`` names its thread."""

    _httpd: BaseServer
    _thread: threading.Thread | None = None
    thread_name = "sandbox"

    def serve_in_thread(self) -> Self:
        # A short poll keeps shutdown() quick, which a test suite starting many servers feels.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
