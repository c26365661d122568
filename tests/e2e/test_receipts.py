"""A completed pickup gets its receipt: issued by the notifications worker, told to both
parties over their sockets, and read back over REST."""

import asyncio
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.e2e.client import call, http, notification, open_inbox, open_socket, pickup_data

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

MEMBERS = {"Victor Recycling": "victor", "Vera Metals": "vera", "Vince Scrap & E-waste": "vince"}
WEIGHED = {"paper": Decimal("37.4"), "metal": Decimal("12.5")}


async def test_completion_issues_a_receipt_to_both_parties(stack, tokens):
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    alice_inbox = await open_inbox(stack, tokens["alice"])
    data = pickup_data(materials=("paper", "metal"))
    data["items"][1]["estimated_kg"] = 15
    pickup_id = (await call(alice, "create", data=data))["pickup"]["id"]

    # Whichever vendor collects both (Victor, the nearest, unless other tests keep him full).
    await notification(alice_inbox, "pickup.offered", pickup_id)
    offered = (await call(alice, "get", pickup_id=pickup_id))["pickup"]
    member = MEMBERS[offered["vendor"]["name"]]
    quoted = {i["material"]: Decimal(i["price_per_kg"]) for i in offered["items"]}
    vendor = await open_socket(stack, tokens[member], "/ws/pickups/")
    vendor_inbox = await open_inbox(stack, tokens[member])

    assert (await call(vendor, "accept", pickup_id=pickup_id))["type"] == "pickup.accepted"
    steps = {
        "en_route": {},
        "picked_up": {
            "items": [{"material": m, "actual_kg": float(kg)} for m, kg in WEIGHED.items()]
        },
        "completed": {},
    }
    for status, extra in steps.items():
        reply = await call(vendor, "update", pickup_id=pickup_id, status=status, **extra)
        assert reply["type"] == f"pickup.{status}", reply

    for_alice, for_vendor = await asyncio.gather(
        notification(alice_inbox, "receipt.issued", pickup_id),
        notification(vendor_inbox, "receipt.issued", pickup_id),
    )
    assert for_alice["data"] == for_vendor["data"]

    amounts = {
        m: (kg * quoted[m]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        for m, kg in WEIGHED.items()
    }
    status, receipt, _ = await asyncio.to_thread(
        http, stack, "GET", f"/api/pickups/{pickup_id}/receipt/", tokens["alice"]
    )
    assert status == 200, receipt
    assert receipt["number"] == for_alice["data"]["receipt"]
    assert receipt["pickup_id"] == pickup_id
    assert receipt["vendor"]["name"] == offered["vendor"]["name"]
    assert receipt["currency"] == for_alice["data"]["currency"] == "EUR"
    lines = {line["material"]: line for line in receipt["lines"]}
    assert set(lines) == set(WEIGHED)
    for material, line in lines.items():
        assert Decimal(line["actual_kg"]) == WEIGHED[material]
        assert Decimal(line["price_per_kg"]) == quoted[material]
        assert Decimal(line["amount"]) == amounts[material]
    assert Decimal(receipt["total"]) == sum(amounts.values())
    assert Decimal(receipt["total"]) == Decimal(for_alice["data"]["total"])
    assert Decimal(receipt["total_kg"]) == sum(WEIGHED.values())

    # The vendor's member reads the same receipt; a vendor that had nothing to do with it cannot.
    status, theirs, _ = await asyncio.to_thread(
        http, stack, "GET", f"/api/pickups/{pickup_id}/receipt/", tokens[member]
    )
    assert (status, theirs) == (200, receipt)
    stranger = next(m for m in MEMBERS.values() if m != member)
    status, _, _ = await asyncio.to_thread(
        http, stack, "GET", f"/api/pickups/{pickup_id}/receipt/", tokens[stranger]
    )
    assert status == 404
    for ws in (alice, alice_inbox, vendor, vendor_inbox):
        await ws.close()
