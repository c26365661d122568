"""The security page and the WebSocket reference name every close code the consumers send, and
the security page every guarantee this suite tests."""

import re
from pathlib import Path

from procurement_system import websocket

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLOSE_CODES = {name: value for name, value in vars(websocket).items() if name.startswith("CLOSE_")}


def test_the_close_codes_are_ours():
    assert CLOSE_CODES == {
        "CLOSE_UNAUTHENTICATED": 4401,
        "CLOSE_TOO_MANY_SOCKETS": 4409,
        "CLOSE_RATE_LIMITED": 4429,
        "CLOSE_MESSAGE_TOO_BIG": 1009,
    }


def close_code_table(page: str, heading: str) -> set[int]:
    """The codes in the first table under ``heading``."""
    after = (DOCS / page).read_text().split(f"\n{heading}\n", 1)[1]
    table = next(block for block in after.split("\n\n") if block.startswith(".. list-table::"))
    rows = after.split(table, 1)[1].lstrip("\n").split("\n\n")[0]  # rows follow the options
    return {int(code) for code in re.findall(r"^   \* - ``(\d{4})``", rows, re.MULTILINE)}


def test_every_close_code_is_in_both_close_code_tables():
    codes = set(CLOSE_CODES.values())
    assert close_code_table("websocket-api.rst", "Close codes") == codes
    assert close_code_table("security.rst", "Limits and close codes") == codes


def test_the_security_page_is_in_the_table_of_contents():
    assert re.search(r"^   security$", (DOCS / "index.rst").read_text(), re.MULTILINE)
