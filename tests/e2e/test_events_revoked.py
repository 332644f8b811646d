"""`outdial events --follow` with an access key that is deleted while it follows: the real server
ends the stream at its next credential check, and the command stops with one error line instead
of following on."""

import subprocess
from pathlib import Path

import httpx

from tests.e2e.test_events_stream import _call, _env, _login
from tests.e2e.test_serve import OUTDIAL, Server

# The server checks the stream's credential every heartbeat period (0.3 s in _env): the command
# has this long, on a loaded machine, to notice the deletion and stop.
STOP_SECONDS = 30


def test_following_with_a_deleted_key_stops_with_one_error(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url)
    server = Server(env, tmp_path / "server.log")
    try:
        admin = _login(server.url)
        key = _call(server.url, admin, "POST", "/v1.0/accesskeys", {"name": "follower", "expire": 3600})
        follower = subprocess.Popen(
            [OUTDIAL, "events", "--follow", "--json", "--url", server.url, "--token", key["token"]],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # An event it prints shows it is following.
            outdial = _call(server.url, admin, "POST", "/v1.0/outdials", {"name": "list"})
            target = _call(server.url, admin, "POST", f"/v1.0/outdials/{outdial['id']}/targets",
                           {"destination_0": {"type": "tel", "target": "+15559876543"}})
            _call(server.url, admin, "DELETE", f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}")
            assert follower.stdout is not None
            assert '"outdialtarget_updated"' in follower.stdout.readline()

            _call(server.url, admin, "DELETE", f"/v1.0/accesskeys/{key['id']}")
            code = follower.wait(timeout=STOP_SECONDS)
            assert follower.stderr is not None
            stderr = follower.stderr.read()
        finally:
            follower.kill()
            follower.wait()
            for pipe in (follower.stdout, follower.stderr):
                if pipe is not None:
                    pipe.close()
        assert code == 1, stderr
        assert "Traceback" not in stderr
        lines = stderr.splitlines()
        assert lines[0].startswith("the server closed the stream; reconnecting after event"), stderr
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and "INVALID_CREDENTIALS" in errors[0], stderr
        assert httpx.get(f"{server.url}/v1.0/events", params={"token": key["token"]}).status_code == 401
    finally:
        server.stop()
