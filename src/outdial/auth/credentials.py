"""Password hashing, login tokens (JWT) and access-key secrets."""

import datetime as dt
import functools
import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a miss costs as long as a wrong
    password. Made on first need: hashing at import would slow every process that loads this."""
    return _hasher.hash(secrets.token_urlsafe(16))
ACCESS_KEY_PREFIX = "odk_"
# The largest token generation a column of either database holds (a 32-bit integer).
MAX_TOKEN_GENERATION = 2**31 - 1
JWT_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_login_token(
    agent_id: uuid.UUID, generation: int, secret: str, now: dt.datetime, lifetime_s: int
) -> str:
    claims = {
        "sub": str(agent_id),
        "gen": generation,
        "iat": int(now.replace(tzinfo=dt.UTC).timestamp()),
        "exp": int(now.replace(tzinfo=dt.UTC).timestamp()) + lifetime_s,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


@dataclass(frozen=True)
class LoginClaims:
    agent_id: uuid.UUID
    exp: float  # POSIX seconds
    # The agent's token generation when issued (0: a token from before generations).
    generation: int


def read_login_claims(token: str, secret: str, now: dt.datetime) -> LoginClaims | None:
    """The claims of a valid, unexpired token; None for anything else."""
    try:
        # Expiry is checked against the injected clock below, not the wall clock inside PyJWT.
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM],
            options={"verify_exp": False, "require": ["sub", "exp"]},
        )
        if not _is_finite_number(claims["exp"]) or claims["exp"] <= now.replace(tzinfo=dt.UTC).timestamp():
            return None
        generation = claims.get("gen", 0)
        if not isinstance(generation, int) or isinstance(generation, bool):
            return None
        if not 0 <= generation <= MAX_TOKEN_GENERATION:
            return None
        return LoginClaims(uuid.UUID(claims["sub"]), float(claims["exp"]), generation)
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None


def _is_finite_number(value: object) -> bool:
    """PyJWT's own check is off (verify_exp=False) and its JSON reader takes NaN and Infinity:
    `NaN <= now` is false, so without this a token with `"exp": NaN` would never expire."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past any float ("exp": 999…9)
        return False


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(ACCESS_KEY_PREFIX)


def new_access_key_secret() -> str:
    return ACCESS_KEY_PREFIX + secrets.token_urlsafe(32)


def access_key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_random_password() -> str:
    return secrets.token_urlsafe(18)
