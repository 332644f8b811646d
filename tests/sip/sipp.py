"""SIPp as a trunk for tests and benchmarks: one scenario on a free loopback port."""

import asyncio
import errno
import os
import shutil
import socket
from pathlib import Path
from typing import Self

import pytest

SCENARIOS = Path(__file__).resolve().parent.parent / "sip_scenarios"
DTMF_1_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
TRANSPORTS = {"udp": "u1", "tcp": "t1", "tls": "l1"}


def require_sipp() -> str:
    """The sipp binary; a failure in CI, a skip naming the package elsewhere."""
    path = shutil.which("sipp")
    if path is None:
        message = "SIPp is not installed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message + " (apt-get install sip-tester)")
    return path


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on loopback right now."""
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _port_taken(port: int, transport: str) -> bool:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
        return False


def _render(template: Path, workdir: Path, fill: dict[str, str]) -> Path:
    """The scenario with its @name@ placeholders filled (SIPp checks status codes at load)."""
    text = template.read_text()
    for name, value in fill.items():
        text = text.replace(f"@{name}@", value)
    path = workdir / f"{template.stem}-{os.getpid()}-{id(fill)}.xml"
    path.write_text(text)
    return path


class Sipp:
    """One SIPp UAS process: `async with Sipp(...) as sipp:` then `await sipp.finished()`."""

    def __init__(
        self,
        scenario: str,
        workdir: Path,
        *,
        transport: str = "udp",
        fill: dict[str, str] | None = None,
        calls: int = 1,
        timeout: float = 30,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = require_sipp()
        self.scenario = _render(SCENARIOS / scenario, workdir, fill or {})
        self.workdir = workdir
        self.transport = transport
        self.calls = calls
        self.timeout = timeout
        self.extra = extra or []
        self.port = free_port()
        self.media_port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.log = workdir / f"sipp-{self.port}.log"
        self.errors = workdir / f"sipp-{self.port}-errors.log"

    async def __aenter__(self) -> Self:
        args = [
            self.binary,
            "-sf", str(self.scenario),
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-mi", "127.0.0.1",
            "-mp", str(self.media_port),
            "-t", TRANSPORTS[self.transport],
            "-m", str(self.calls),
            "-timeout", f"{int(self.timeout)}s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg", "-message_file", str(self.log),
            "-trace_err", "-error_file", str(self.errors),
        ]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *args,
            *self.extra,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(200):  # SIPp listens within a few ms; bounded at 10 s
            if _port_taken(self.port, self.transport) or self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        return self

    async def finished(self, timeout: float | None = None) -> int:
        """Wait for SIPp to end its calls; its exit status (0: every call passed)."""
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), timeout or self.timeout + 5)
        return self.process.returncode or 0

    def messages(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def explain(self) -> str:
        errors = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return f"SIPp errors:\n{errors}\nSIPp messages:\n{self.messages()}"

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
