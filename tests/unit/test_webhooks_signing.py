"""A run's messages are signed once per run's key and moment, each exactly as one message alone
would be, and the convention's own library verifies them."""

import datetime as dt
import json

from standardwebhooks.webhooks import Webhook as Verifier

from outdial.webhooks.signing import RunSigner, Signer, generate_secret, signed_headers

AT = dt.datetime(2026, 11, 28, 13, 0, 0, 750000)  # naive UTC, like every stored time


def test_a_run_signs_each_message_as_it_would_be_signed_alone() -> None:
    secret = generate_secret()
    signer = Signer(secret)
    run = RunSigner(signer, AT)
    bodies = [json.dumps({"id": n, "data": {"name": "Zoë ☎"}}, ensure_ascii=False)
              for n in range(3)]
    for n, body in enumerate(bodies):
        headers = run.headers(str(n), body.encode())
        assert headers == signed_headers(signer, str(n), AT, body)
        assert headers["webhook-timestamp"] == str(int(AT.replace(tzinfo=dt.UTC).timestamp()))
        # A receiver's check of the timestamp is against its own clock: verified as sent now.
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        fresh = RunSigner(signer, now).headers(str(n), body.encode())
        Verifier(secret).verify(body, fresh)  # raises if the signature is wrong


def test_another_key_signs_differently() -> None:
    body = b'{"id":1}'
    one = RunSigner(Signer(generate_secret()), AT).headers("1", body)
    other = RunSigner(Signer(generate_secret()), AT).headers("1", body)
    assert one["webhook-signature"] != other["webhook-signature"]
