"""What a credential proves by itself, kept per process so that a request does not prove it again.

A login token's signature and claims, and which access key a secret is the secret of, never
change: they are what this cache holds. Whether the key or its agent has since been deleted, and
the agent's permission, do change: they are never cached, but read by every request — in the
request's own first statement on the hot routes (see `live_permission`), else in one indexed
statement of its own. So a key deleted or an agent demoted through any process, or by hand in
the database, is refused by the very next request everywhere, with nothing to invalidate.
"""

import datetime as dt
import uuid
from collections import OrderedDict
from dataclasses import dataclass

# Credentials remembered per process; the least recently used is forgotten first.
CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Credential:
    """A login token or an access key that was valid when first seen: whom it names, and until
    when. `access_key_id` is None for a login token."""

    customer_id: uuid.UUID
    agent_id: uuid.UUID | None
    access_key_id: uuid.UUID | None
    # A login token's `exp` claim (POSIX seconds, compared as the token reader does) or an
    # access key's tm_expire.
    token_exp: float | None = None
    key_expire: dt.datetime | None = None
    # A login token's generation: refused once its agent's token generation has moved past it.
    token_generation: int = 0

    def expired(self, now: dt.datetime) -> bool:
        if self.key_expire is not None:
            return self.key_expire <= now
        assert self.token_exp is not None
        return self.token_exp <= now.replace(tzinfo=dt.UTC).timestamp()


class CredentialCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, Credential] = OrderedDict()

    def get(self, secret: str) -> Credential | None:
        credential = self._entries.get(secret)
        if credential is not None:
            self._entries.move_to_end(secret)
        return credential

    def put(self, secret: str, credential: Credential) -> None:
        self._entries[secret] = credential
        self._entries.move_to_end(secret)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, secret: str) -> None:
        self._entries.pop(secret, None)

    def __len__(self) -> int:
        return len(self._entries)
