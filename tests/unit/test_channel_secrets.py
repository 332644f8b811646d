"""Channel passwords at rest: encrypted, readable only with the key they were written with."""

import pytest

from outdial.channels.secrets import SecretBox, SecretUnreadable


def test_a_password_is_encrypted_and_comes_back() -> None:
    box = SecretBox("a long random server key")
    token = box.encrypt("trunk-secret")
    assert "trunk-secret" not in token
    assert token != box.encrypt("trunk-secret")  # a fresh IV every time
    assert box.decrypt(token) == "trunk-secret"


def test_another_key_cannot_read_it() -> None:
    token = SecretBox("key one").encrypt("trunk-secret")
    with pytest.raises(SecretUnreadable, match="OUTDIAL_CHANNEL_SECRET_KEY"):
        SecretBox("key two").decrypt(token)


def test_a_tampered_token_is_refused() -> None:
    box = SecretBox("key")
    token = box.encrypt("trunk-secret")
    with pytest.raises(SecretUnreadable):
        box.decrypt(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        SecretBox("")
