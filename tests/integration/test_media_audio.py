"""Sound sources on real peers: espeak-ng speech, files fetched over HTTP from a local server,
the disk cache and its bound, the beep."""

import array
import asyncio
import io
import itertools
import math
import os
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from outdial.media import ActionFailed, AudioError, AudioSources, RtpSession, run_actions
from outdial.media.audio import AudioCache
from tests.integration.test_media_rtp import PORTS, Peer, answer_to, until
from tests.media_support import require_program

FIXTURES = Path(__file__).parent.parent / "fixtures"


def wav_file(seconds: float, rate: int = 44100, channels: int = 2) -> bytes:
    frames = array.array("h", (
        round(8000 * math.sin(2 * math.pi * 440 * n / rate))
        for n in range(int(rate * seconds)) for _ in range(channels)
    ))
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(frames.tobytes())
    return out.getvalue()


class Files:
    """A real HTTP server on loopback, serving bytes by path and counting requests."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                files.hits[self.path] = files.hits.get(self.path, 0) + 1
                status, body = files.bodies.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def files():
    served = Files()
    yield served
    served.close()


@pytest.fixture
async def sources(tmp_path: Path):
    # The files below are served on loopback, which `play` refuses unless allowed.
    made = AudioSources(cache_dir=tmp_path / "audio", allow_private_networks=True)
    yield made
    await made.aclose()


def loudness(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


# -- speech -----------------------------------------------------------------------------------


async def test_speech_plays_as_whole_packets(sources: AudioSources) -> None:
    require_program("espeak-ng", "espeak-ng")
    clip = await sources.talk("Hello, this is Outdial calling about your order.", "en-US")
    assert 1000 < clip.duration_ms < 8000
    assert loudness(clip.pcm) > 500  # speech, not silence
    assert clip.packet_count == math.ceil(len(clip.pcm) / 320)
    assert len(clip.encoded("PCMU")) == 160 * clip.packet_count
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        Peer, local_addr=("127.0.0.1", 0))
    session = await RtpSession.open(*PORTS, host="127.0.0.1")
    try:
        session.start(answer_to(peer))
        await session.play(clip)
        await until(lambda: len(peer.packets) == session.stats.packets_sent)
    finally:
        session.close()
        peer.transport.close()
    markers = [n for n, (_, data, _) in enumerate(peer.packets) if data[1] & 0x80]
    start = markers[-1]  # the first packet of the speech (the stream's own first has one too)
    sent = peer.packets[start:]
    assert len(sent) == clip.packet_count
    assert b"".join(data[12:] for _, data, _ in sent) == clip.encoded("PCMU")


async def test_speech_is_made_once_then_read_from_the_cache(tmp_path: Path) -> None:
    require_program("espeak-ng", "espeak-ng")
    first = AudioSources(cache_dir=tmp_path / "audio")
    try:
        clip = await first.talk("Press one to confirm.", "en-US")
        again = await asyncio.gather(*(first.talk("Press one to confirm.", "en-US")
                                       for _ in range(5)))
        assert all(c is clip for c in again)
    finally:
        await first.aclose()
    # Another process on the same folder, without espeak-ng: the speech comes from disk.
    second = AudioSources(cache_dir=tmp_path / "audio", espeak="espeak-ng-not-installed")
    try:
        assert (await second.talk("Press one to confirm.", "en-us")).pcm == clip.pcm
        with pytest.raises(AudioError, match="Debian package espeak-ng"):
            await second.talk("Something new.", "en-US")
    finally:
        await second.aclose()


async def test_languages(sources: AudioSources) -> None:
    require_program("espeak-ng", "espeak-ng")
    german = await sources.talk("Guten Tag", "de-DE")
    assert german.duration_ms > 300
    assert (await sources.talk("Hello", "en-ZZ")).duration_ms > 200  # no en-zz voice: en
    with pytest.raises(AudioError, match="espeak-ng cannot speak language 'xx-YY'"):
        await sources.talk("Hello", "xx-YY")
    with pytest.raises(AudioError, match="not a language tag"):
        await sources.talk("Hello", "--help")


async def test_a_missing_espeak_fails_the_talk_action_naming_the_package(tmp_path: Path) -> None:
    sources = AudioSources(cache_dir=tmp_path / "audio", espeak="espeak-ng-not-installed")
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        Peer, local_addr=("127.0.0.1", 0))
    session = await RtpSession.open(*PORTS, host="127.0.0.1")
    try:
        session.start(answer_to(peer))
        with pytest.raises(ActionFailed) as failed:
            await run_actions([{"type": "beep"}, {"type": "talk", "option": {"text": "Hi"}}],
                              session, sources)
    finally:
        session.close()
        peer.transport.close()
        await sources.aclose()
    assert str(failed.value) == (
        "actions[1] (talk): talk needs espeak-ng, which is not installed (no "
        "'espeak-ng-not-installed' on the PATH; Debian package espeak-ng: "
        "apt-get install espeak-ng)")
    assert failed.value.index == 1 and failed.value.digits == ""


# -- files ------------------------------------------------------------------------------------


async def test_files_are_decoded_to_8_khz_mono(files: Files, sources: AudioSources) -> None:
    files.bodies["/hello.wav"] = (200, wav_file(1.0))
    files.bodies["/tone.flac"] = (200, (FIXTURES / "tone-440hz-500ms.flac").read_bytes())
    files.bodies["/tone.ogg"] = (200, (FIXTURES / "tone-440hz-500ms.ogg").read_bytes())
    wav = await sources.play(files.url("/hello.wav"))
    assert abs(len(wav.pcm) // 2 - 8000) <= 8
    assert loudness(wav.pcm) > 3000  # 8000 peak: about 5657 RMS
    for name in ("/tone.flac", "/tone.ogg"):
        clip = await sources.play(files.url(name))
        assert abs(clip.duration_ms - 500) <= 5, name
        assert loudness(clip.pcm) > 1000, name


async def test_a_file_is_fetched_once(files: Files, tmp_path: Path) -> None:
    files.bodies["/message.wav"] = (200, wav_file(0.5, rate=16000, channels=1))
    url = files.url("/message.wav")
    first = AudioSources(cache_dir=tmp_path / "audio", allow_private_networks=True)
    try:
        clips = await asyncio.gather(*(first.play(url) for _ in range(20)))
        assert len({id(c) for c in clips}) == 1
    finally:
        await first.aclose()
    second = AudioSources(cache_dir=tmp_path / "audio", allow_private_networks=True)
    try:
        assert (await second.play(url)).pcm == clips[0].pcm
    finally:
        await second.aclose()
    assert files.hits == {"/message.wav": 1}


async def test_bad_files_say_what_is_wrong(files: Files, tmp_path: Path) -> None:
    files.bodies["/text.wav"] = (200, b"<html>this is not audio</html>")
    files.bodies["/huge.wav"] = (200, wav_file(1.0))
    files.bodies["/error.wav"] = (500, b"oops")
    sources = AudioSources(cache_dir=tmp_path / "audio", max_download_bytes=100_000,
                           allow_private_networks=True)
    try:
        with pytest.raises(AudioError, match="answered HTTP 404"):
            await sources.play(files.url("/missing.wav"))
        with pytest.raises(AudioError, match="answered HTTP 500"):
            await sources.play(files.url("/error.wav"))
        with pytest.raises(AudioError, match="is not audio that can be decoded"):
            await sources.play(files.url("/text.wav"))
        with pytest.raises(AudioError, match="is larger than 100000 bytes"):
            await sources.play(files.url("/huge.wav"))
        with pytest.raises(AudioError, match="could not be fetched"):
            await sources.play("http://127.0.0.1:9/closed.wav")
        # a failure is not cached: once the file is there, it plays
        files.bodies["/missing.wav"] = (200, wav_file(0.1))
        assert (await sources.play(files.url("/missing.wav"))).duration_ms == 100
    finally:
        await sources.aclose()


async def test_a_play_url_on_the_servers_own_networks_is_refused(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign's author chooses the URLs a worker fetches: by default only public addresses
    are reached, checked at each connection (a name is resolved and judged by what it
    resolves to), so a campaign cannot probe the server's own networks."""
    files.bodies["/hello.wav"] = (200, wav_file(0.2))
    # A proxy from the environment is not used: the guard could not see where it connects.
    monkeypatch.setenv("HTTP_PROXY", files.url("/"))
    sources = AudioSources(cache_dir=tmp_path / "audio")
    try:
        with pytest.raises(AudioError, match="127.0.0.1 is a loopback address; "
                                             "OUTDIAL_PLAY_ALLOW_PRIVATE_NETWORKS=true allows it"):
            await sources.play(files.url("/hello.wav"))
        with pytest.raises(AudioError, match="localhost resolves to .* loopback address"):
            await sources.play(files.url("/hello.wav").replace("127.0.0.1", "localhost"))
        with pytest.raises(AudioError, match="169.254.169.254 is a link-local address"):
            await sources.play("http://169.254.169.254/latest/meta-data/")
    finally:
        await sources.aclose()
    assert files.hits == {}


def test_the_cache_drops_the_least_recently_used_past_its_bound(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path / "audio", max_bytes=2500)

    def age(key: str, seconds_ago: float) -> None:
        stamp = os.stat(cache._path(key)).st_mtime - seconds_ago
        os.utime(cache._path(key), (stamp, stamp))

    cache.put("a", b"a" * 1000)
    cache.put("b", b"b" * 1000)
    age("a", 20)
    age("b", 10)
    assert cache.get("a") == b"a" * 1000  # used now: b is the least recently used
    cache.put("c", b"c" * 1000)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"a" * 1000, None, b"c" * 1000)
    assert sum(p.stat().st_size for p in (tmp_path / "audio").iterdir()) <= 2500


def test_the_beep_is_a_quarter_second_at_1_khz() -> None:
    beep = AudioSources(cache_dir=Path("/nonexistent")).beep()
    samples = array.array("h", beep.pcm)
    assert beep.duration_ms == 250
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    assert 248 <= crossings <= 251  # 1000 Hz × 0.25 s
