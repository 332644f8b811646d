"""RTP sessions held at once by one process while playing audio, and what each one costs.

N sessions (one per call) each play a speech clip on repeat to a receiver socket on loopback,
in one asyncio process, as one worker does. The receiver is a separate process, so its work
is not counted. For each N: packets sent more than 10 ms after their slot (the goal: < 1 %),
the worst lateness, slots skipped after stalls, packets lost on the way, and the sender's CPU
(per session: % of one core).

    .venv/bin/python bench/media_bench.py [--sessions 100,250,500,750,1000] [--seconds 10]
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import struct
import sys
import time
from pathlib import Path

from outdial.media import AudioError, AudioSources, Clip, RtpSession, SdpAnswer
from outdial.media.audio import tone

RAMP_SECONDS = 2.0  # calls start spread over this time, then the window is measured


def receiver(port_ready, stop, report) -> None:
    """Counts packets per stream and the ones missing from each stream's sequence."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port_ready.send(sock.getsockname()[1])
    streams: dict[int, list[int]] = {}  # ssrc → [first seq, last seq, packets]
    buffer = bytearray(2048)
    while not stop.is_set():
        try:
            size = sock.recv_into(buffer)
        except TimeoutError:
            continue
        if size < 12:
            continue
        sequence, _, ssrc = struct.unpack_from("!HII", buffer, 2)
        stream = streams.get(ssrc)
        if stream is None:
            streams[ssrc] = [sequence, sequence, 1]
        else:
            stream[1] = sequence
            stream[2] += 1
    expected = sum(((s[1] - s[0]) & 0xFFFF) + 1 for s in streams.values())
    received = sum(s[2] for s in streams.values())
    report.send((len(streams), received, expected - received))


async def run(count: int, seconds: float, clip: Clip, port: int) -> dict:
    answer = SdpAnswer("127.0.0.1", port, 0, "PCMU", 101, "sendrecv")
    sessions: list[RtpSession] = []
    stop = asyncio.Event()

    async def call(delay: float) -> None:
        await asyncio.sleep(delay)
        session = await RtpSession.open(10000, 60000, host="127.0.0.1")
        sessions.append(session)
        session.start(answer)
        while not stop.is_set():
            await session.play(clip)

    tasks = [asyncio.create_task(call(RAMP_SECONDS * n / count)) for n in range(count)]
    await asyncio.sleep(RAMP_SECONDS)
    async with asyncio.timeout(60):
        while len(sessions) < count:
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    before = [(s.stats.packets_sent, s.stats.packets_late, s.stats.slots_skipped) for s in sessions]
    cpu_before, wall_before = time.process_time(), time.monotonic()
    max_late = [s.stats.max_late_ms for s in sessions]
    for s in sessions:
        s.stats.max_late_ms = 0.0
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
    after = [(s.stats.packets_sent, s.stats.packets_late, s.stats.slots_skipped) for s in sessions]
    worst = max(s.stats.max_late_ms for s in sessions)
    stop.set()
    for s in sessions:
        s.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    sent = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    late = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    skipped = sum(a[2] - b[2] for a, b in zip(after, before, strict=True))
    return {
        "sessions": len(sessions), "sent": sent, "late": late, "skipped": skipped,
        "late_pct": 100 * late / max(sent, 1), "worst_ms": worst,
        "ramp_worst_ms": max(max_late, default=0.0),
        "cpu_pct": 100 * cpu / wall, "cpu_per_session_pct": 100 * cpu / wall / count,
        "expected": count * seconds / 0.020,
    }


def one_size(count: int, seconds: float, pcm: bytes) -> None:
    parent_port, child_port = multiprocessing.Pipe()
    parent_report, child_report = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=receiver, args=(child_port, stop, child_report))
    process.start()
    port = parent_port.recv()
    result = asyncio.run(run(count, seconds, Clip(pcm).prepare(), port))
    time.sleep(0.3)  # the last packets reach the receiver
    stop.set()
    streams, received, lost = parent_report.recv()
    process.join(10)
    verdict = "ok" if result["late_pct"] < 1 else "TOO LATE"
    if streams != count:
        verdict += f" ({streams} streams reached the receiver)"
    print(f"| {count} | {result['sent']:,} ({result['sent'] / result['expected']:.1%}) "
          f"| {result['late']:,} ({result['late_pct']:.2f} %) | {result['worst_ms']:.1f} "
          f"| {result['skipped']:,} | {lost:,} of {received + lost:,} "
          f"| {result['cpu_pct']:.0f} % | {result['cpu_per_session_pct']:.3f} % | {verdict} |",
          flush=True)


def speech() -> bytes:
    async def make() -> bytes:
        sources = AudioSources(cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "media-bench")
        try:
            clip = await sources.talk("Hello. This is a reminder of your appointment tomorrow "
                                      "at ten. Press one to confirm, or two to cancel.", "en-US")
        finally:
            await sources.aclose()
        return clip.pcm

    try:
        return asyncio.run(make())
    except AudioError as error:  # espeak-ng missing: a tone does the same work on the wire
        print(f"(speech unavailable: {error}; playing a 5 s tone)", file=sys.stderr)
        return tone(440, ms=5000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="100,250,500,750,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pcm = speech()
    print(f"clip: {len(pcm) / 16000:.1f} s of speech, played on repeat; window {args.seconds} s "
          f"after a {RAMP_SECONDS} s ramp; load average {os.getloadavg()[0]:.1f}")
    print("| sessions | packets sent (of due) | sent > 10 ms late | worst ms | slots skipped "
          "| lost on the way | sender CPU | CPU per session |  |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for count in (int(n) for n in args.sessions.split(",")):
        one_size(count, args.seconds, pcm)


if __name__ == "__main__":
    main()
