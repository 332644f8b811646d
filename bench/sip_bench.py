"""SIP call set-up and tear-down rate: one SipDialer against a SIPp UAS on loopback, no media.

Each call is INVITE → 180 → 200 → ACK → BYE → 200, placed through the dialer's public `dial`
(the outcome table and all). Prints calls per second, our CPU per call, and SIPp's verdict.
Goal: ≥ 200 calls/s.

    .venv/bin/python bench/sip_bench.py [--calls 5000] [--concurrency 100] [--transport udp]
"""

import argparse
import asyncio
import resource
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from outdial.dialers.base import Attempt
from outdial.dialers.sip import SipDialer, SipTrunk

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "sip_scenarios" / "answer.xml"
TRANSPORTS = {"udp": "u1", "tcp": "t1"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def attempt(n: int) -> Attempt:
    return Attempt(
        campaigncall_id=uuid.uuid4(),
        target_id=uuid.uuid4(),
        destination={"type": "tel", "target": f"+1555{n % 10_000_000:07d}"},
        destination_index=0,
        try_count=1,
        source=None,
        dial_timeout=30_000,
        actions=[],
        outdial_data="",
        target_data="",
    )


async def main(calls: int, concurrency: int, transport: str) -> int:
    sipp = shutil.which("sipp")
    if sipp is None:
        print("SIPp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    process = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port),
        "-t", TRANSPORTS[transport], "-m", str(calls), "-nostdin",
        "-max_socket", "1000", "-buff_size", "4194304", "-trace_err", "-error_file", str(workdir / "errors.log"),
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.5)  # SIPp binds its port
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port, transport=transport), media=False)
    await dialer.start()
    outcomes: Counter[str] = Counter()
    # One call first, unmeasured: SIPp reads its socket only once it has settled, and INVITEs
    # queued before that arrive together with their retransmissions, which it takes for errors.
    outcomes[(await dialer.dial(attempt(0))).kind.value] += 1
    queue = iter(range(1, calls))

    async def caller() -> None:
        for n in queue:
            outcome = await dialer.dial(attempt(n))
            outcomes[outcome.kind.value] += 1

    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    await dialer.aclose()
    try:
        status = await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        status = await process.wait()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"transport {transport}, {calls} calls, {concurrency} at once, no media")
    print(f"outcomes: {dict(outcomes)}")
    measured = calls - 1
    print(f"wall {elapsed:.2f} s → {measured / elapsed:.0f} calls/s (set-up + tear-down)")
    print(f"our CPU {cpu:.2f} s → {cpu / measured * 1000:.2f} ms per call; peak RSS {peak_mb:.0f} MB")
    print(f"SIPp exit status {status} (0: every call passed its scenario)")
    return 0 if status == 0 and outcomes["answered"] == calls else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="udp")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.calls, args.concurrency, args.transport)))
