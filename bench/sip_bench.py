"""SIP calls against a SIPp UAS on loopback: set-up rate (no media), or calls held with audio.

Each call is INVITE → 180 → 200 → ACK → BYE → 200, placed through one SipDialer's public `dial`
(the outcome table and all). Without --hold-seconds: no media; prints calls per second, our CPU
per call, and SIPp's verdict. Goal: ≥ 200 calls/s.

With --hold-seconds N: every call plays its campaign actions (a spoken sentence, a beep, then
silence, RTP all the way) for N seconds before our BYE; prints the calls held at once and the RTP
pacing of every call's session. Goal: < 1 % of packets sent more than 10 ms after their slot.

    .venv/bin/python bench/sip_bench.py [--calls 5000] [--concurrency 100] [--transport udp]
    .venv/bin/python bench/sip_bench.py --hold-seconds 10 --calls 500 --concurrency 500
"""

import argparse
import asyncio
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import ClassVar

import outdial.dialers.sip
from outdial.dialers.base import Attempt
from outdial.dialers.sip import SipDialer, SipTrunk
from outdial.media import AudioSources, RtpSession, RtpStats
from outdial.media.sdp import SdpAnswer

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "sip_scenarios" / "answer.xml"
TRANSPORTS = {"udp": "u1", "tcp": "t1"}
SENTENCE = "Hello, this is a reminder from Outdial. Please stay on the line."


class HeldSession(RtpSession):
    """The dialer's RTP session, counted: calls whose media runs now (the most at once), and the
    pacing figures of every session once it closes."""

    held: ClassVar[int] = 0
    peak_held: ClassVar[int] = 0
    closed_stats: ClassVar[list[RtpStats]] = []

    def __init__(self) -> None:
        super().__init__()
        self.held_since_answer = False

    def start(self, answer: SdpAnswer) -> None:
        first = not self.held_since_answer
        super().start(answer)
        if first:
            self.held_since_answer = True
            HeldSession.held += 1
            HeldSession.peak_held = max(HeldSession.peak_held, HeldSession.held)

    def close(self) -> None:
        if not self.closed:
            if self.held_since_answer:
                HeldSession.held -= 1
            HeldSession.closed_stats.append(self.stats)
        super().close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def attempt(n: int, actions: list | None = None) -> Attempt:
    return Attempt(
        campaigncall_id=uuid.uuid4(),
        target_id=uuid.uuid4(),
        destination={"type": "tel", "target": f"+1555{n % 10_000_000:07d}"},
        destination_index=0,
        try_count=1,
        source=None,
        dial_timeout=30_000,
        actions=actions or [],
        outdial_data="",
        target_data="",
    )


async def main(calls: int, concurrency: int, transport: str, hold: float) -> int:
    sipp = shutil.which("sipp")
    if sipp is None:
        print("SIPp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    # SIPp's media socket (-mi/-mp, the port its SDP answer names) receives our RTP and ignores
    # it: no -rtp_echo. Kernel drops past its buffer are harmless, it never reads them.
    process = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port),
        "-mi", "127.0.0.1", "-mp", str(free_port()),
        "-t", TRANSPORTS[transport], "-m", str(calls), "-nostdin",
        "-max_socket", "1000", "-buff_size", "4194304", "-trace_err", "-error_file", str(workdir / "errors.log"),
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.5)  # SIPp binds its port
    trunk = SipTrunk(host="127.0.0.1", port=port, transport=transport)
    actions: list = []
    if hold:
        outdial.dialers.sip.RtpSession = HeldSession  # the dialer opens its sessions through it
        sources = AudioSources(cache_dir=workdir / "audio")
        # Spoken once before the clock starts, as a campaign's message is for its first call.
        spoken = (await sources.talk(SENTENCE)).duration_ms + sources.beep().duration_ms
        if spoken > hold * 1000:
            print(
                f"--hold-seconds must be at least {spoken / 1000:.1f} (the message)",
                file=sys.stderr,
            )
            return 2
        actions = [
            {"type": "talk", "option": {"text": SENTENCE}},
            {"type": "beep"},
            {"type": "sleep", "option": {"duration": round(hold * 1000) - spoken}},
        ]
        dialer = SipDialer(trunk, sources=sources)
    else:
        dialer = SipDialer(trunk, media=False)
    await dialer.start()
    outcomes: Counter[str] = Counter()
    # One call first, unmeasured: SIPp reads its socket only once it has settled, and INVITEs
    # queued before that arrive together with their retransmissions, which it takes for errors.
    outcomes[(await dialer.dial(attempt(0))).kind.value] += 1
    queue = iter(range(1, calls))

    async def caller() -> None:
        for n in queue:
            outcome = await dialer.dial(attempt(n, actions))
            outcomes[outcome.kind.value] += 1

    HeldSession.closed_stats.clear()  # the warm-up call's session is not measured
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    load_after = os.getloadavg()
    await dialer.aclose()
    if hold:
        await sources.aclose()
    try:
        status = await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        status = await process.wait()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured = calls - 1
    if hold:
        stats = HeldSession.closed_stats
        sent = sum(s.packets_sent for s in stats)
        late = sum(s.packets_late for s in stats)
        skipped = sum(s.slots_skipped for s in stats)
        worst = max((s.max_late_ms for s in stats), default=0.0)
        print(
            f"transport {transport}, {measured} calls held {hold:g} s each (talk + beep + "
            f"silence), {concurrency} at once (+1 warm-up call, not counted)"
        )
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
        print(f"outcomes: {dict(outcomes)}")
        print(f"calls held at once (peak, media running): {HeldSession.peak_held}")
        print(
            f"RTP sessions measured: {len(stats)}; packets sent {sent} "
            f"(~{measured * hold / 0.02:.0f} expected), slots skipped {skipped}"
        )
        print(
            f"sent > 10 ms late: {late} = {late / max(sent, 1) * 100:.3f} % (goal < 1 %); "
            f"worst lateness {worst:.1f} ms"
        )
        print(
            f"wall {elapsed:.2f} s; our CPU {cpu:.2f} s → {cpu / measured * 1000:.1f} ms per "
            f"call ({cpu / elapsed * 100:.0f} % of one core); peak RSS {peak_mb:.0f} MB"
        )
        print(f"SIPp exit status {status} (0: every call passed its scenario)")
        ok = status == 0 and outcomes["answered"] == calls and late / max(sent, 1) < 0.01
        return 0 if ok else 1
    print(f"transport {transport}, {calls} calls, {concurrency} at once, no media")
    print(f"outcomes: {dict(outcomes)}")
    print(f"wall {elapsed:.2f} s → {measured / elapsed:.0f} calls/s (set-up + tear-down)")
    print(
        f"our CPU {cpu:.2f} s → {cpu / measured * 1000:.2f} ms per call; peak RSS {peak_mb:.0f} MB"
    )
    print(f"SIPp exit status {status} (0: every call passed its scenario)")
    return 0 if status == 0 and outcomes["answered"] == calls else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="udp")
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=0.0,
        help="hold every call this long, playing audio (0: no media)",
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.calls, args.concurrency, args.transport, args.hold_seconds)))
