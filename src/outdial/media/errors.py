"""Why media failed: one exception family, each with a sentence a person can act on."""


class MediaError(Exception):
    """Media could not be set up or played; the message says what and how to fix it."""


class SdpError(MediaError):
    """The peer's SDP cannot be used (malformed, or no codec in common)."""


class AudioError(MediaError):
    """An audio source could not be turned into sound (TTS missing, bad URL, undecodable)."""


class CallEnded(MediaError):
    """The RTP session was closed (the callee hung up) while we were waiting on it."""
