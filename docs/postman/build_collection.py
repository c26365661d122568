"""Finish the Postman collection that openapi-to-postmanv2 made from the OpenAPI schema.

``make postman`` runs this after the converter. It makes the collection ready to use as
imported: the token from "Get your token" is saved in the environment and sent by every other
request (``Authorization: Token {{token}}``), the id of the pickup you created fills every
``{id}``, and each create uses a fresh Idempotency-Key. It also writes the environment file.

Usage: python build_collection.py CONVERTED.json OUTPUT_DIR
"""

import json
import sys
from pathlib import Path

TOKEN_AUTH = {
    "type": "apikey",
    "apikey": [
        {"key": "key", "value": "Authorization", "type": "string"},
        {"key": "value", "value": "Token {{token}}", "type": "string"},
        {"key": "in", "value": "header", "type": "string"},
    ],
}
SAVE_TOKEN = [
    "if (pm.response.code === 200) {",
    "    pm.environment.set('token', pm.response.json().token);",
    "}",
]
SAVE_PICKUP_ID = [
    "if (pm.response.code === 201) {",
    "    pm.environment.set('pickupId', pm.response.json().id);",
    "    pm.environment.set('assignmentTaskId', pm.response.json().assignment_task_id);",
    "}",
]
ENVIRONMENT = {
    "name": "Procurement pickup platform (local)",
    "values": [
        {"key": "baseUrl", "value": "http://127.0.0.1:8000", "type": "default", "enabled": True},
        {"key": "username", "value": "alice", "type": "default", "enabled": True},
        {"key": "password", "value": "demo-pass-123", "type": "secret", "enabled": True},
        {"key": "token", "value": "", "type": "secret", "enabled": True},
        {"key": "pickupId", "value": "", "type": "default", "enabled": True},
        {"key": "assignmentTaskId", "value": "", "type": "default", "enabled": True},
    ],
}
# Path variables named in the schema, and the environment variable that fills each, by path.
PATH_VALUES = {("pickups", "id"): "{{pickupId}}", ("tasks", "task_id"): "{{assignmentTaskId}}"}


def requests(items: list[dict]):
    for item in items:
        if "request" in item:
            yield item
        yield from requests(item.get("item", []))


def finish(collection: dict) -> dict:
    collection["info"]["name"] = "Procurement pickup platform"
    collection["auth"] = TOKEN_AUTH
    collection["variable"] = []  # everything comes from the environment
    for item in requests(collection["item"]):
        request = item["request"]
        path = [p for p in request["url"]["path"] if p]
        request.pop("auth", None)  # inherit the collection's token auth
        if path == ["api", "auth", "token"] and request["method"] == "POST":
            request["auth"] = {"type": "noauth"}
            request["body"]["raw"] = json.dumps(
                {"username": "{{username}}", "password": "{{password}}"}, indent=2
            )
            item["event"] = [_test_script(SAVE_TOKEN)]
        if path == ["api", "pickups"] and request["method"] == "POST":
            item["event"] = [_test_script(SAVE_PICKUP_ID)]
        for header in request.get("header", []):
            if header["key"] == "Idempotency-Key":
                header["value"] = "{{$guid}}"
        for parameter in request["url"].get("query", []):
            parameter["disabled"] = True  # optional filters: switch on what you need
        for variable in request["url"].get("variable", []):
            value = PATH_VALUES.get((path[1], variable["key"]))
            if value:
                variable["value"] = value
        # Drop the converter's sample responses: they are the schema's examples, which the
        # rendered API docs show already, and they make the file hard to review.
        item["response"] = []
    return collection


def _test_script(lines: list[str]) -> dict:
    return {"listen": "test", "script": {"type": "text/javascript", "exec": lines}}


def main(converted: str, output_dir: str) -> None:
    out = Path(output_dir)
    collection = finish(json.loads(Path(converted).read_text()))
    (out / "procurement.postman_collection.json").write_text(
        json.dumps(collection, indent=2) + "\n"
    )
    (out / "procurement.postman_environment.json").write_text(
        json.dumps(ENVIRONMENT, indent=2) + "\n"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
