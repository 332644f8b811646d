"""`outdial import` and `outdial imports` against a real `outdial serve`: the job's id at once,
the list and show calls, and Ctrl-C in the middle of an upload."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.test_cli import (  # noqa: F401 - cli and server are the fixtures these tests use
    OUTDIAL,
    Cli,
    Server,
    clean_environment,
    cli,
    server,
)

JOB_LINE = re.compile(r"import ([0-9a-f-]{36}): follow it from elsewhere with `(outdial imports show [^`]+)`")


def test_import_names_its_job_at_once_and_the_job_is_listed_and_shown(
        server: Server, cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    outdial_id = server.outdial("followed")
    rows = tmp_path / "people.csv"
    rows.write_text("name;destination_0\nann;+15559876543\nbob;+1555\n")

    result = cli.ok("import", str(rows), "--outdial", outdial_id, "--json")

    announced = JOB_LINE.search(result.stderr)
    assert announced, result.stderr
    job_id, follow = announced.groups()
    assert follow == f"outdial imports show {job_id} --outdial {outdial_id} --follow"
    job = result.json()
    assert (job["id"], job["status"], job["rows_imported"], job["rows_rejected"]) == (job_id, "done", 1, 1)
    listed = cli.json("imports", "list", "--outdial", outdial_id)
    assert [j["id"] for j in listed["result"]] == [job_id]
    assert cli.json("imports", "show", job_id, "--outdial", outdial_id, "--follow") == job
    table = cli.ok("imports", "list", "--outdial", outdial_id).stdout
    assert job_id in table and "done" in table


def test_ctrl_c_mid_upload_names_the_job_which_fails_on_the_server(
        server: Server, cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    outdial_id = server.outdial("interrupted")
    rows = tmp_path / "many.csv"
    with rows.open("w") as out:  # ~25 MB: far more than the socket buffers hold
        out.write("name,destination_0\n")
        for start in range(0, 1_000_000, 10_000):
            out.write("".join(f"r{i},+1555{i:07d}\n" for i in range(start, start + 10_000)))
    env = {**clean_environment(), "OUTDIAL_CONFIG": str(cli.config), "NO_COLOR": "1", **cli.env}
    process = subprocess.Popen([OUTDIAL, "import", str(rows), "--outdial", outdial_id, "--poll", "0.1"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        announced = JOB_LINE.search(first)
        assert announced, first
        job_id = announced.group(1)
        here = f"/v1.0/outdials/{outdial_id}/imports/{job_id}"
        deadline = time.monotonic() + 60
        while not (server.call("GET", here).status_code == 200
                   and server.call("GET", here).json()["rows_total"] > 0):
            assert time.monotonic() < deadline, "the job never reported progress"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=120)  # a busy machine may take long to stop it
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # and close its pipes
    assert process.returncode == 130, rest
    assert f"upload stopped: import {job_id} fails on the server" in rest
    assert f"outdial imports show {job_id} --outdial {outdial_id}" in rest
    deadline = time.monotonic() + 15
    while (job := server.call("GET", here).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert (job["status"], job["rows_imported"]) == ("failed", 0)
    assert "client disconnected" in job["errors"][-1]["message"]
    assert server.call("GET", f"/v1.0/outdials/{outdial_id}/stats").json()["targets"] == 0
