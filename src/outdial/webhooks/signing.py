"""Secrets and signatures of the Standard Webhooks convention (standardwebhooks.com).

A secret is `whsec_` and the base64 of its key; a message is signed as
`v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, so a receiver verifies
it with any of the convention's libraries.
"""

import base64
import binascii
import datetime as dt
import math
import secrets

from standardwebhooks.webhooks import Webhook as Signer

PREFIX = "whsec_"
KEY_BYTES = 32  # a generated key: as long as the HMAC-SHA256 output
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def secret_problem(value: str) -> str | None:
    """Why `value` is not a usable secret, or None."""
    if not value.startswith(PREFIX):
        return f"must be {PREFIX}<base64 of {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes>"
    try:
        key = base64.b64decode(value[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return f"the part after {PREFIX} is not base64"
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return f"the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes (it is {len(key)})"
    return None


def signed_headers(signer: Signer, message_id: str, at: dt.datetime, body: str) -> dict[str, str]:
    """The three headers of a message sent at `at` (naive UTC, like every stored time), signed
    by `signer` (`Signer(secret)`, made once for the messages of one secret)."""
    stamp = at.replace(tzinfo=dt.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(stamp.timestamp())),
        "webhook-signature": signer.sign(message_id, stamp, body),
    }

