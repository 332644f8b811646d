"""Channel passwords at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key
derived from the server's channel key, so the database alone never gives a password away."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

# The name under which a generated channel key is kept in server_secrets.
CHANNEL_KEY_NAME = "channel_secret_key"


class SecretUnreadable(Exception):
    """A stored password that the current key cannot decrypt (the key changed since)."""


class SecretBox:
    """Encrypts and decrypts channel passwords; any string is accepted as the key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the channel secret key must not be empty")
        # Fernet wants 32 random bytes; a configured key is any text, so it is stretched by a
        # hash (a configured key is meant to be long and random, like secret_key).
        digest = hashlib.sha256(b"outdial channel secrets\x00" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SecretUnreadable(
                "the stored password cannot be decrypted with the server's channel key "
                "(OUTDIAL_CHANNEL_SECRET_KEY changed?); set the password again"
            ) from None
