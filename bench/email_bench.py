"""Email messages per second through the email dialer to a local SMTP relay (goal: >= 200/s).

Starts aiosmtpd in a process of its own (as tests/smtp_support.py sets it up: STARTTLS with a
self-signed certificate and AUTH, or plain with --security none), then sends `--messages`
templated messages with `--concurrency` attempts in flight through one EmailDialer — the same
object the engine uses for an SMTP channel, with its pool of `--connections` connections.
Prints messages per second, latency per message, and the CPU the client used per message.

    .venv/bin/python bench/email_bench.py --messages 3000 --concurrency 50 --connections 4
"""

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outdial.channels.schemas import SmtpSettings, parse_settings  # noqa: E402
from outdial.dialers import Attempt, OutcomeKind  # noqa: E402
from outdial.dialers.email import EmailDialer  # noqa: E402
from tests.smtp_support import Relay, free_port, start_relay  # noqa: E402

ACTION = {"type": "email_send", "option": {
    "subject": "Your renewal, {{ name }}",
    "content": "<p>Dear {{ target_name }},</p><p>your account {{ data }} renews soon.</p>",
}}


def serve_relay(port: int, security: str) -> None:
    """The relay process: serve until stdin closes."""
    import tests.smtp_support as support

    support.free_port = lambda: port  # type: ignore[assignment]
    for _ in start_relay(Path(tempfile.mkdtemp()), security):
        print("ready", flush=True)
        sys.stdin.read()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def attempt(n: int) -> Attempt:
    return Attempt(
        campaigncall_id=uuid.uuid4(), target_id=uuid.uuid4(),
        destination={"type": "email", "target": f"person{n}@example.org",
                     "target_name": f"Person {n}", "name": "", "detail": ""},
        destination_index=0, try_count=1, source=None, dial_timeout=30000, actions=[ACTION],
        outdial_data="spring", target_data=f"A-{n}", target_name=f"Person {n}",
    )


async def send_all(dialer: EmailDialer, messages: int, concurrency: int) -> tuple[
        list[float], dict[str, int], float, float]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    queue = iter(range(messages))

    async def sender() -> None:
        for n in queue:
            began = time.perf_counter()
            outcome = await dialer.dial(attempt(n))
            latencies.append(time.perf_counter() - began)
            outcomes[outcome.kind.value] = outcomes.get(outcome.kind.value, 0) + 1

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return latencies, outcomes, elapsed, cpu


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    relay_process = subprocess.Popen(
        [sys.executable, __file__, "--serve-relay", str(port), "--security", args.security],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert relay_process.stdout is not None and relay_process.stdout.readline() == "ready\n"
        relay = Relay("127.0.0.1", port, None, args.security)  # type: ignore[arg-type]
        settings = parse_settings("smtp", relay.channel_settings(max_connections=args.connections))
        assert isinstance(settings, SmtpSettings)
        dialer = EmailDialer(settings, relay.channel_settings()["password"])
        await send_all(dialer, min(200, args.messages), args.concurrency)  # warm-up
        relay_cpu = process_cpu(relay_process.pid)
        latencies, outcomes, elapsed, cpu = await send_all(dialer, args.messages,
                                                           args.concurrency)
        relay_cpu = process_cpu(relay_process.pid) - relay_cpu
        await dialer.aclose()
    finally:
        if relay_process.stdin is not None:
            relay_process.stdin.close()
        relay_process.wait(timeout=30)

    assert outcomes == {OutcomeKind.ANSWERED.value: args.messages}, outcomes
    latencies.sort()
    print(f"security={args.security} messages={args.messages} concurrency={args.concurrency} "
          f"connections={args.connections}")
    print(f"{args.messages / elapsed:.0f} messages/s; latency p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, p99 "
          f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms; client CPU "
          f"{cpu / args.messages * 1000:.2f} ms/message ({cpu / elapsed:.0%} of a core); relay "
          f"CPU {relay_cpu / args.messages * 1000:.2f} ms/message ({relay_cpu / elapsed:.0%})")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--security", choices=("starttls", "tls", "none"), default="starttls")
    parser.add_argument("--serve-relay", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_relay:
        serve_relay(arguments.serve_relay, arguments.security)
    else:
        asyncio.run(main(arguments))
