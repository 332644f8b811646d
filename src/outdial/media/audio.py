"""Where a call's sound comes from: speech (espeak-ng), fetched files (cached), and a beep."""

import array
import asyncio
import hashlib
import math
import os
import re
import shutil
from collections import OrderedDict
from pathlib import Path

import httpx
import miniaudio

from outdial.media.errors import AudioError
from outdial.media.rtp import Clip
from outdial.netguard import guarded_transport

SAMPLE_RATE = 8000
MAX_CLIP_SECONDS = 600  # longer audio is refused: every play must end
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
ESPEAK_PACKAGE = "espeak-ng"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "outdial" / "audio"


def decode_to_pcm(data: bytes, what: str) -> bytes:
    """Any file miniaudio reads (WAV, MP3, FLAC, Ogg Vorbis) → 8 kHz mono signed 16-bit PCM."""
    try:
        sound = miniaudio.decode(
            data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
            sample_rate=SAMPLE_RATE,
        )
    except miniaudio.MiniaudioError as error:
        raise AudioError(f"{what} is not audio that can be decoded (WAV, MP3, FLAC or Ogg "
                         f"Vorbis): {error}") from None
    if sound.duration > MAX_CLIP_SECONDS:
        raise AudioError(f"{what} lasts {sound.duration:.0f} s, more than {MAX_CLIP_SECONDS} s")
    return sound.samples.tobytes()


def tone(frequency: float = 1000.0, ms: int = 250, amplitude: float = 0.3) -> bytes:
    """A sine tone as 8 kHz mono signed 16-bit PCM."""
    count = SAMPLE_RATE * ms // 1000
    scale = amplitude * 32767
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return array.array("h", (round(scale * math.sin(step * n)) for n in range(count))).tobytes()


class AudioCache:
    """Decoded audio on disk, one file per key, the least recently used dropped past max_bytes.

    Files are written whole then renamed, so processes sharing the folder never read half a file;
    a file removed by another process's trim is simply a miss."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest() + ".pcm")

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: trimmed last
        except FileNotFoundError:
            return None
        return data

    def put(self, key: str, pcm: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(pcm)
        os.replace(temporary, path)
        self._trim()

    def _trim(self) -> None:
        files = []
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".pcm"):
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


class AudioSources:
    """Makes the clips of `talk`, `play` and `beep`, shared by every call of a process.

    Each clip is made once: kept decoded on disk (`AudioCache`, across restarts and processes)
    and the most recent ones in memory, already encoded, so a thousand calls playing one message
    cost one fetch, one decode and one G.711 encoding."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        cache_max_bytes: int = 256 * 1024**2,
        memory_max_bytes: int = 64 * 1024**2,
        http: httpx.AsyncClient | None = None,
        fetch_timeout: float = 30.0,
        max_download_bytes: int = 64 * 1024**2,
        espeak: str = "espeak-ng",
        speech_timeout: float = 30.0,
        allow_private_networks: bool = False,
    ) -> None:
        self.cache = AudioCache(cache_dir or default_cache_dir(), cache_max_bytes)
        self._memory: OrderedDict[str, Clip] = OrderedDict()
        self._memory_bytes = 0
        self._memory_max_bytes = memory_max_bytes
        self._making: dict[str, asyncio.Future[Clip]] = {}
        self._owns_http = http is None
        # A campaign's author chooses the URLs: they reach public addresses only (a redirect's
        # too), unless the server allows its own networks. No proxy from the environment then:
        # where a proxy connects to cannot be checked.
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(10.0), follow_redirects=True, max_redirects=5,
            transport=None if allow_private_networks else guarded_transport(
                "OUTDIAL_PLAY_ALLOW_PRIVATE_NETWORKS"),
            trust_env=allow_private_networks,
        )
        self._fetch_timeout = fetch_timeout
        self._max_download_bytes = max_download_bytes
        self._espeak = espeak
        self._speech_timeout = speech_timeout
        self._beep = Clip(tone()).prepare()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def beep(self) -> Clip:
        """A 1 kHz tone of 250 ms."""
        return self._beep

    async def talk(self, text: str, language: str = "en-US") -> Clip:
        """`text` spoken by espeak-ng in `language` (a tag such as en-US, de or fr-FR)."""
        if not LANGUAGE.fullmatch(language):
            raise AudioError(f"language {language!r} is not a language tag such as en-US")
        return await self._clip(f"talk\0{language.lower()}\0{text}",
                                lambda: self._speak(text, language))

    async def play(self, url: str) -> Clip:
        """The audio file at `url`, fetched once (then from the cache) and decoded."""
        return await self._clip(f"play\0{url}", lambda: self._fetch(url))

    # -- making clips once --------------------------------------------------------------------

    async def _clip(self, key: str, make) -> Clip:
        clip = self._memory.get(key)
        if clip is not None:
            self._memory.move_to_end(key)
            return clip
        if key in self._making:  # another call is making it right now: share the result
            return await asyncio.shield(self._making[key])
        future: asyncio.Future[Clip] = asyncio.get_running_loop().create_future()
        self._making[key] = future
        try:
            pcm = await asyncio.to_thread(self.cache.get, key)
            if pcm is None:
                pcm = await make()
                await asyncio.to_thread(self.cache.put, key, pcm)
            clip = await asyncio.to_thread(Clip(pcm).prepare)
            self._remember(key, clip)
            future.set_result(clip)
            return clip
        except BaseException as error:  # cancelled too: calls sharing the future must not hang
            shared = error if isinstance(error, Exception) else AudioError("making it was cancelled")
            future.set_exception(shared)
            future.exception()  # retrieved, even if no other call was waiting
            raise
        finally:
            del self._making[key]

    def _remember(self, key: str, clip: Clip) -> None:
        self._memory[key] = clip
        self._memory_bytes += len(clip.pcm)
        while self._memory_bytes > self._memory_max_bytes and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= len(old.pcm)

    async def _speak(self, text: str, language: str) -> bytes:
        if shutil.which(self._espeak) is None:
            raise AudioError(f"talk needs espeak-ng, which is not installed (no {self._espeak!r} "
                             f"on the PATH; Debian package {ESPEAK_PACKAGE}: "
                             f"apt-get install {ESPEAK_PACKAGE})")
        voices = [language.lower()]
        if "-" in language:
            voices.append(language.split("-")[0].lower())  # en-XX without its own voice → en
        for voice in voices:
            wav, problem = await self._espeak_run(text, voice)
            if wav is not None:
                return await asyncio.to_thread(decode_to_pcm, wav, f"speech for {text[:30]!r}")
        raise AudioError(f"espeak-ng cannot speak language {language!r}: {problem}")

    async def _espeak_run(self, text: str, voice: str) -> tuple[bytes | None, str]:
        # Text goes on stdin, never as an argument: it can start with "-".
        process = await asyncio.create_subprocess_exec(
            self._espeak, "-v", voice, "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self._speech_timeout):
                wav, errors = await process.communicate(text.encode())
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AudioError(f"espeak-ng took more than {self._speech_timeout:.0f} s") from None
        if process.returncode != 0 or not wav:
            return None, errors.decode(errors="replace").strip() or f"exit {process.returncode}"
        return wav, ""

    async def _fetch(self, url: str) -> bytes:
        body = bytearray()
        try:
            async with asyncio.timeout(self._fetch_timeout):
                async with self._http.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise AudioError(f"{url} answered HTTP {response.status_code}")
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_download_bytes:
                            raise AudioError(
                                f"{url} is larger than {self._max_download_bytes} bytes")
        except TimeoutError:
            raise AudioError(f"{url} took more than {self._fetch_timeout:.0f} s") from None
        except httpx.HTTPError as error:
            raise AudioError(f"{url} could not be fetched: {error}") from None
        return await asyncio.to_thread(decode_to_pcm, bytes(body), url)
