"""The Postman collection in docs/postman/, run with newman (Postman's command-line runner)
against the live stack, the way a new user would click through it."""

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from tests.conftest import IN_CI
from tests.e2e.stack import REPO, wait_until

pytestmark = pytest.mark.e2e

NEWMAN = ["npx", "--yes", "newman@6.2.2"]
COLLECTION = REPO / "docs" / "postman" / "procurement.postman_collection.json"
ENVIRONMENT = REPO / "docs" / "postman" / "procurement.postman_environment.json"


@pytest.fixture
def newman(stack, tmp_path):
    if shutil.which("npx") is None:
        message = "npx (Node.js) is needed to run the Postman collection with newman"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    environment = json.loads(ENVIRONMENT.read_text())
    values = {v["key"]: v for v in environment["values"]}
    values["baseUrl"]["value"] = stack.http
    state = tmp_path / "environment.json"
    state.write_text(json.dumps(environment))

    def run(*folders: str, username: str) -> str:
        current = json.loads(state.read_text())
        for value in current["values"]:
            if value["key"] == "username":
                value["value"] = username
        state.write_text(json.dumps(current))
        command = [
            *NEWMAN,
            "run",
            str(COLLECTION),
            "--environment",
            str(state),
            "--export-environment",
            str(state),
            "--bail",
            "--reporters",
            "cli",
        ]
        for folder in folders:
            command += ["--folder", folder]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "npm_config_update_notifier": "false"},
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return done.stdout

    run.environment = lambda: {
        v["key"]: v["value"] for v in json.loads(state.read_text())["values"]
    }
    return run


def test_a_new_user_goes_from_token_to_accepted_pickup_with_the_collection(stack, newman):
    newman("Get your token", username="alice")
    created = newman("Request a pickup", username="alice")
    assert "201 Created" in created
    saved = newman.environment()
    assert saved["pickupId"] and saved["assignmentTaskId"]

    def offered() -> bool:
        request = urllib.request.Request(
            f"{stack.http}/api/pickups/{saved['pickupId']}/",
            headers={"Authorization": f"Token {saved['token']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["status"] == "offered"

    wait_until(offered, timeout=15, what="the pickup to be offered")
    assert "200 OK" in newman(
        "A background task's state and result", "One pickup", username="alice"
    )
    newman("Get your token", username="victor")  # the nearest vendor's member
    assert "200 OK" in newman("Accept an offer (vendor member)", username="victor")
    newman("Get your token", username="alice")
    listed = newman("List your notifications", "One pickup", username="alice")
    assert listed.count("200 OK") == 2
