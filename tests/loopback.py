"""Stand-in HTTP APIs on loopback: the OpenAI-compatible servers the tests talk to."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

State = TypeVar("State")


class LoopbackServer(ThreadingHTTPServer, Generic[State]):
    """A threaded server whose handlers share ``state`` (what was asked, how to answer)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: State) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.state = state

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class JSONHandler(BaseHTTPRequestHandler):
    """Reads a JSON body, replies JSON, and keeps the test output quiet."""

    server: LoopbackServer[Any]

    def read_json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        return body

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        content = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[JSONHandler], state: State) -> Iterator[LoopbackServer[State]]:
    """Serve ``handler`` on a free loopback port until the block ends."""
    server = LoopbackServer(handler, state)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
