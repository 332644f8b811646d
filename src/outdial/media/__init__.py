"""Media of a SIP call: SDP, RTP with G.711 and RFC 4733 key presses, sound, and the actions.

How a SIP dialer uses it, once the INVITE is about to go out:

    from outdial.media import AudioSources, RtpSession, build_offer, parse_answer, run_actions

    sources = AudioSources()                      # one per process: clips are shared by calls
    session = await RtpSession.open(settings.rtp_port_min, settings.rtp_port_max)
    offer = build_offer(announced_address, session.local_port)      # the INVITE's SDP body
    ...                                                            # 200 OK arrives
    answer = parse_answer(sdp_of_the_200)         # SdpError: no common codec, no audio, …
    session.start(answer)                         # 20 ms packets from now on (silence at first)
    result = await run_actions(campaign_actions, session, sources)
    # result.digits: "1"; result.hangup_by: "us" → send BYE; "callee" → the callee's BYE came
    session.close()                               # always; idempotent

    # when the callee's BYE arrives while the actions run:
    session.close()        # run_actions then returns with hangup_by="callee" and the digits so far

API:
    SUPPORTED_CALL_ACTIONS      frozenset of the action types a campaign may hold
    parse_actions(actions)      → typed steps; InvalidArgument naming `actions.i.option.x`
                                (the API's validation at campaign create/update)
    run_actions(actions, session, sources) → ActionsResult(digits, hangup_by)
                                raises ActionFailed (a sound could not be made: espeak-ng
                                missing, URL unreachable, undecodable file), with `.digits`
    build_offer(address, port, session_id=None) → SDP text: PCMU 0, PCMA 8, telephone-event 101
    parse_answer(text)          → SdpAnswer(address, port, payload_type, codec,
                                telephone_event, direction); SdpError
    RtpSession.open(port_min, port_max, host="0.0.0.0") → bound session, `.local_port`
        .start(answer)  .play(clip)  .pause(seconds)  .next_digit()  .close()  .stats
    AudioSources(cache_dir=None, cache_max_bytes=256 MiB, ...)
        .talk(text, language)  .play(url)  .beep()  → Clip; .aclose()
    Clip(pcm)                   8 kHz mono signed 16-bit PCM, encoded to G.711 once per codec
    MediaError ─┬─ SdpError, AudioError, ActionFailed
                └─ CallEnded (the session was closed while something waited on it)
"""

from outdial.media.actions import (
    SUPPORTED_CALL_ACTIONS,
    ActionFailed,
    ActionsResult,
    parse_actions,
    run_actions,
)
from outdial.media.audio import AudioSources
from outdial.media.errors import AudioError, CallEnded, MediaError, SdpError
from outdial.media.rtp import Clip, RtpSession, RtpStats
from outdial.media.sdp import SdpAnswer, build_offer, parse_answer

__all__ = [
    "SUPPORTED_CALL_ACTIONS",
    "ActionFailed",
    "ActionsResult",
    "AudioError",
    "AudioSources",
    "CallEnded",
    "Clip",
    "MediaError",
    "RtpSession",
    "RtpStats",
    "SdpAnswer",
    "SdpError",
    "build_offer",
    "parse_actions",
    "parse_answer",
    "run_actions",
]
