"""What `outdial serve` needs around uvicorn: its socket bound first, and a clean exit on SIGTERM;
and the metrics server of `outdial worker`."""

import asyncio
import errno
import socket
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from outdial.cli.output import fail

if TYPE_CHECKING:
    from outdial.settings import Settings


def listen(host: str, port: int, options: tuple[str, str] = ("--host", "--port")) -> socket.socket:
    """Bind the API's socket before anything else happens: a busy port is reported before the
    database is touched, not after the first admin has been made. `options` name the host and
    port options of the command, for the messages."""
    host_option, port_option = options
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        fail(f"cannot listen on {host!r}: no such address here; use {host_option} 127.0.0.1 "
             f"(this machine only) or {host_option} 0.0.0.0 (every interface)")
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is already in use (another `outdial serve` or worker?); "
                 f"choose another with {port_option}, or stop the program listening there")
        if error.errno == errno.EACCES:
            fail(f"port {port} needs privileges this user does not have; use a port above 1023 "
                 f"({port_option} 8080)")
        fail(f"cannot listen on {host}:{port}: {error.strerror}; check {host_option} and "
             f"{port_option}")
    listener.set_inheritable(True)
    return listener


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or Ctrl-C that shuts it down gracefully ends the
    process with status 0: uvicorn re-raises the signal once shut down, which makes it 143 or 130."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Responses that never end by themselves (the event stream) end at their next look,
        # so that the graceful shutdown does not wait on them for ever; clients resume.
        state = getattr(self.config.app, "state", None)
        if state is not None:
            state.stopping = True
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # Emptied before uvicorn's context exit re-raises them: the shutdown was the answer.
            self._captured_signals.clear()


class EmbeddedServer(uvicorn.Server):
    """uvicorn serving beside other work of the same event loop, which keeps the signals: the
    work decides when to stop, then stops the server."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_metrics_during(work: Awaitable[None], settings: "Settings",
                               listener: socket.socket) -> None:
    """Serve this process's /metrics on `listener` until `work` has ended."""
    from outdial.api.metrics import metrics_app

    config = uvicorn.Config(metrics_app(settings), log_level=settings.log_level,
                            access_log=False, lifespan="off")
    server = EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="metrics server")
    try:
        await work
    finally:
        server.should_exit = True
        await serving
