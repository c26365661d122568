"""The Postman collection in docs/postman/ covers the API as the schema describes it
(regenerate it with ``make postman`` when an endpoint changes)."""

import json
import re
from pathlib import Path

from tests.test_docs import rest_endpoints

POSTMAN = Path(__file__).resolve().parents[1] / "docs" / "postman"


def load(name: str) -> dict:
    return json.loads((POSTMAN / name).read_text())


def requests(items):
    for item in items:
        if "request" in item:
            yield item
        yield from requests(item.get("item", []))


def test_the_collection_has_one_request_per_endpoint():
    collection = load("procurement.postman_collection.json")
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    found = set()
    for item in requests(collection["item"]):
        path = re.sub(r":(\w+)", r"{\1}", "/" + "/".join(item["request"]["url"]["path"]))
        found.add(f"{item['request']['method']} {path}")
    assert found == rest_endpoints()


def test_the_token_is_fetched_once_and_sent_everywhere():
    collection = load("procurement.postman_collection.json")
    assert {"key": "value", "value": "Token {{token}}", "type": "string"} in collection["auth"][
        "apikey"
    ]
    by_name = {i["name"]: i for i in requests(collection["item"])}
    login = by_name["Get your token"]
    assert login["request"]["auth"] == {"type": "noauth"}
    assert "pm.environment.set('token'" in "".join(login["event"][0]["script"]["exec"])
    others = [i for name, i in by_name.items() if name != "Get your token"]
    assert all("auth" not in i["request"] for i in others)  # they inherit the token


def test_the_environment_names_every_variable_the_collection_uses():
    text = (POSTMAN / "procurement.postman_collection.json").read_text()
    used = set(re.findall(r"\{\{(\w+)\}\}", text))
    environment = {v["key"] for v in load("procurement.postman_environment.json")["values"]}
    assert used <= environment
    assert "baseUrl" in environment
