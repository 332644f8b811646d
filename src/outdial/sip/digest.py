"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616): MD5 and SHA-256, qop=auth."""

import hashlib
import re
import secrets
from dataclasses import dataclass

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# Strongest first: when a server offers several challenges we answer the best one we know.
_PREFERENCE = ["SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS"]
_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)')


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> "Challenge | None":
        """A `Digest ...` challenge, or None for another scheme or one missing realm/nonce."""
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            return None
        params = {
            key.lower(): val[1:-1].replace('\\"', '"') if val.startswith('"') else val
            for key, val in _PARAM.findall(rest)
        }
        if "realm" not in params or "nonce" not in params:
            return None
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()),
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    @property
    def supported(self) -> bool:
        return self.algorithm in _PREFERENCE and (not self.qop or "auth" in self.qop)


def pick(challenges: list[str], realm: str | None = None) -> Challenge | None:
    """The challenge to answer among a response's WWW-/Proxy-Authenticate values."""
    parsed = [c for c in map(Challenge.parse, challenges) if c and c.supported]
    if realm:
        parsed = [c for c in parsed if c.realm == realm] or parsed
    parsed.sort(key=lambda c: _PREFERENCE.index(c.algorithm))
    return parsed[0] if parsed else None


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge` for one request."""
    algorithm = challenge.algorithm
    digest = _HASHES[algorithm.removesuffix("-SESS")]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    fields = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
    ]
    if "auth" in challenge.qop:
        count = f"{nc:08x}"
        response = h(f"{ha1}:{challenge.nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{h(f"{ha1}:{challenge.nonce}:{ha2}")}"')
    fields.append(f"algorithm={algorithm}")
    if challenge.opaque is not None:
        fields.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(fields)
