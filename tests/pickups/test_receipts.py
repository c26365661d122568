"""Receipts: issued when a pickup is completed, priced as quoted with the offer, rounded half up
to the cent, and shown to the pickup's parties only (service, REST, WebSocket, printable page)."""

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from notifications.models import Notification
from pickups import receipts, services, tasks
from pickups.models import PickupItem, PickupRequest, Receipt, ReceiptLine
from procurement_system.errors import NotFound, ValidationError
from tests.consumers import ask, connect, token_for
from tests.factories import HOME, UserFactory, VendorFactory, client_for, create_pickup, member_of
from vendors.models import VendorMaterial

pytestmark = pytest.mark.django_db


@pytest.fixture
def vera():
    """The nearest vendor, collecting paper at 0.12 and metal at 0.80 per kg."""
    vendor = VendorFactory(name="Vera Metals", materials=["paper", "metal"])
    set_prices(vendor, paper="0.12", metal="0.80")
    return vendor


@pytest.fixture
def other():
    """Another vendor, farther away, that never gets these pickups."""
    return VendorFactory(name="Other", latitude=HOME[0] + 0.05)


@pytest.fixture
def people(customer, vera, other):
    return {
        "customer": customer,
        "member": member_of(vera),
        "other_member": member_of(other),
        "stranger": UserFactory(username="stranger"),
    }


# --- helpers ----------------------------------------------------------------------------------


def set_prices(vendor, **prices: str) -> None:
    for code, value in prices.items():
        updated = VendorMaterial.objects.filter(vendor=vendor, material_id=code).update(
            price_per_kg=Decimal(value)
        )
        assert updated == 1


def refreshed(pickup_id: int) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup_id)


STEPS = ["offered", "accepted", "en_route", "picked_up", "completed"]


def pickup_at(run_on_commit, customer, vendor, status: str, weights: dict[str, str]):
    """A pickup of ``weights``' materials, driven by ``vendor`` up to ``status``; work queued on
    commit (the assignment, the receipt) runs as it would after each request."""
    pickup = run_on_commit(create_pickup, customer, materials=tuple(weights))
    pickup = refreshed(pickup.pk)
    assert (pickup.status, pickup.vendor_id) == ("offered", vendor.pk)
    member = member_of(vendor)
    for step in STEPS[1 : STEPS.index(status) + 1]:
        if step == "accepted":
            run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member)
        else:
            run_on_commit(
                services.pickup_advance,
                pickup_id=pickup.pk,
                by=member,
                status=step,
                actual_weights=(
                    {code: Decimal(kg) for code, kg in weights.items()}
                    if step == "picked_up"
                    else None
                ),
            )
    return refreshed(pickup.pk)


def receipt_of(pickup) -> Receipt:
    return Receipt.objects.get(pickup_id=pickup.pk)


def kinds_for(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).values_list("kind", flat=True))


@pytest.fixture
def completed(customer, vera, other, run_on_commit):
    """Collected 37.4 kg of paper (4.488 → 4.49) and 13 kg of metal (10.40)."""
    return pickup_at(
        run_on_commit, customer, vera, "completed", {"paper": "37.4", "metal": "13.00"}
    )


# --- issuing ------------------------------------------------------------------------------------


def test_completing_a_pickup_issues_its_receipt(completed, vera, settings):
    receipt = receipt_of(completed)
    assert receipt.number == f"R-{completed.pk:06d}"
    assert (receipt.vendor_id, receipt.vendor_name) == (vera.pk, "Vera Metals")
    assert receipt.currency == settings.PICKUP_CURRENCY == "EUR"
    lines = [
        (line.material_id, line.material_name, line.estimated_kg, line.actual_kg)
        + (line.price_per_kg, line.amount)
        for line in receipt.lines.all()
    ]
    assert lines == [
        ("paper", "Paper", Decimal("12.50"), Decimal("37.40"), Decimal("0.12"), Decimal("4.49")),
        ("metal", "Metal", Decimal("12.50"), Decimal("13.00"), Decimal("0.80"), Decimal("10.40")),
    ]
    assert receipt.total_kg == Decimal("50.40")
    assert receipt.total == Decimal("14.89")


@pytest.mark.parametrize(
    "actual, price, amount",
    [
        ("37.4", "0.12", "4.49"),  # 4.488
        ("0.5", "0.01", "0.01"),  # 0.005: half up, not to even (0.00)
        ("0.25", "0.02", "0.01"),  # 0.005 again
        ("12.5", "0.33", "4.13"),  # 4.125: half up, not to even (4.12)
        ("12.5", "0.35", "4.38"),  # 4.375
        ("0.1", "0.04", "0.00"),  # 0.004 rounds down
        ("1.01", "0.99", "1.00"),  # 0.9999
        ("10", "0.10", "1.00"),
        ("0", "0.80", "0.00"),  # weighed, but nothing there after all
        ("99999.99", "99999.99", "9999998000.00"),  # 9 999 998 000.0001
    ],
)
def test_each_line_is_rounded_half_up_to_the_cent(
    customer, vera, other, run_on_commit, actual, price, amount
):
    set_prices(vera, paper=price)
    pickup = pickup_at(run_on_commit, customer, vera, "completed", {"paper": actual})
    receipt = receipt_of(pickup)
    line = receipt.lines.get()
    assert line.amount == Decimal(amount)
    assert line.price_per_kg == Decimal(price)
    assert line.actual_kg == Decimal(actual)
    assert receipt.total == Decimal(amount)
    assert receipt.total_kg == Decimal(actual)


def test_the_total_adds_up_the_rounded_lines(customer, vera, other, run_on_commit):
    set_prices(vera, paper="0.01", metal="0.01")
    pickup = pickup_at(run_on_commit, customer, vera, "completed", {"paper": "0.5", "metal": "0.5"})
    receipt = receipt_of(pickup)
    amounts = [line.amount for line in receipt.lines.all()]
    assert amounts == [Decimal("0.01"), Decimal("0.01")]
    assert receipt.total == sum(amounts) == Decimal("0.02")  # what the printed lines add up to
    assert receipt.total_kg == Decimal("1.00")


def test_the_price_quoted_with_the_offer_holds_when_the_vendor_changes_it(
    customer, vera, other, run_on_commit
):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "10", "metal": "2"})
    assert {i.material_id: i.price_per_kg for i in pickup.items.all()} == {
        "paper": Decimal("0.12"),
        "metal": Decimal("0.80"),
    }
    set_prices(vera, paper="5.00", metal="9.00")
    run_on_commit(
        services.pickup_advance, pickup_id=pickup.pk, by=member_of(vera), status="completed"
    )
    receipt = receipt_of(pickup)
    assert [line.price_per_kg for line in receipt.lines.all()] == [Decimal("0.12"), Decimal("0.80")]
    assert receipt.total == Decimal("1.20") + Decimal("1.60")


def test_a_missing_quote_falls_back_to_the_vendors_current_price(
    customer, vera, other, run_on_commit
):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "10", "metal": "2"})
    PickupItem.objects.filter(pickup=pickup, material_id="paper").update(price_per_kg=None)
    set_prices(vera, paper="0.35", metal="9.00")
    run_on_commit(
        services.pickup_advance, pickup_id=pickup.pk, by=member_of(vera), status="completed"
    )
    prices = {line.material_id: line.price_per_kg for line in receipt_of(pickup).lines.all()}
    assert prices == {"paper": Decimal("0.35"), "metal": Decimal("0.80")}  # metal kept its quote
    assert receipt_of(pickup).total == Decimal("3.50") + Decimal("1.60")


def test_issuing_again_returns_the_first_receipt_and_tells_nobody_twice(completed, people):
    first = receipt_of(completed)
    again, created = receipts.receipt_issue(pickup_id=completed.pk)
    assert created is False
    assert again.pk == first.pk
    assert tasks.issue_receipt_task(completed.pk) == first.number
    assert Receipt.objects.count() == 1
    assert ReceiptLine.objects.count() == 2
    for who in ("customer", "member"):
        assert kinds_for(people[who]).count("receipt.issued") == 1


def test_the_first_issue_says_it_is_new(customer, vera, other, run_on_commit):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "1"})
    # Completed without running the queued task: the receipt is issued here, by hand.
    services.pickup_advance(pickup_id=pickup.pk, by=member_of(vera), status="completed")
    assert not Receipt.objects.exists()
    receipt, created = receipts.receipt_issue(pickup_id=pickup.pk)
    assert created is True
    assert receipt.pk == receipt_of(pickup).pk


def test_the_customer_and_every_vendor_member_are_told(customer, vera, other, run_on_commit):
    colleague = UserFactory(username="colleague")
    vera.members.add(colleague)
    pickup = pickup_at(run_on_commit, customer, vera, "completed", {"paper": "37.4"})
    receipt = receipt_of(pickup)
    for user in (customer, member_of(vera), colleague):
        told = Notification.objects.get(recipient=user, kind="receipt.issued")
        assert told.data == {
            "pickup_id": pickup.pk,
            "receipt": receipt.number,
            "total": "4.49",
            "currency": "EUR",
        }
        assert receipt.number in told.message and "4.49 EUR" in told.message
    assert "receipt.issued" not in kinds_for(member_of(other))


@pytest.mark.parametrize("status", ["offered", "accepted", "en_route", "picked_up"])
def test_a_pickup_that_is_not_completed_gets_no_receipt(
    customer, vera, other, run_on_commit, status
):
    pickup = pickup_at(run_on_commit, customer, vera, status, {"paper": "5"})
    assert receipts.receipt_issue(pickup_id=pickup.pk) == (None, False)
    assert tasks.issue_receipt_task(pickup.pk) is None
    assert not Receipt.objects.exists()
    assert "receipt.issued" not in kinds_for(customer)
    with pytest.raises(NotFound):
        receipts.receipt_get(user=customer, pickup_id=pickup.pk)


def test_a_cancelled_or_missing_pickup_gets_no_receipt(customer, vera, other, run_on_commit):
    pickup = pickup_at(run_on_commit, customer, vera, "accepted", {"paper": "5"})
    services.pickup_cancel(pickup_id=pickup.pk, by=customer)
    assert receipts.receipt_issue(pickup_id=pickup.pk) == (None, False)
    assert receipts.receipt_issue(pickup_id=pickup.pk + 1000) == (None, False)
    assert not Receipt.objects.exists()


# --- picking up takes every item's weight ------------------------------------------------------


@pytest.mark.parametrize(
    "weights, named",
    [
        (None, ["metal", "paper"]),
        ({}, ["metal", "paper"]),
        ({"paper": Decimal("3")}, ["metal"]),
        ({"metal": Decimal("0")}, ["paper"]),
    ],
)
def test_picking_up_needs_the_weight_of_every_item(
    customer, vera, other, run_on_commit, weights, named
):
    pickup = pickup_at(run_on_commit, customer, vera, "en_route", {"paper": "1", "metal": "1"})
    with pytest.raises(ValidationError) as raised:
        services.pickup_advance(
            pickup_id=pickup.pk, by=member_of(vera), status="picked_up", actual_weights=weights
        )
    (message,) = raised.value.errors["items"]
    assert f"missing: {', '.join(named)}." in message
    after = refreshed(pickup.pk)
    assert after.status == "en_route"
    assert after.transitions.last().to_status == "en_route"
    assert list(after.items.values_list("actual_kg", flat=True)) == [None, None]


def test_picking_up_refuses_weights_of_materials_not_in_the_pickup(
    customer, vera, other, run_on_commit
):
    pickup = pickup_at(run_on_commit, customer, vera, "en_route", {"paper": "1"})
    with pytest.raises(ValidationError) as raised:
        services.pickup_advance(
            pickup_id=pickup.pk,
            by=member_of(vera),
            status="picked_up",
            actual_weights={"paper": Decimal("1"), "metal": Decimal("2")},
        )
    assert "metal" in raised.value.errors["items"][0]
    assert refreshed(pickup.pk).status == "en_route"


def test_picking_up_without_weights_over_rest_is_a_400_naming_them(
    customer, vera, other, run_on_commit
):
    pickup = pickup_at(run_on_commit, customer, vera, "en_route", {"paper": "1", "metal": "1"})
    response = client_for(member_of(vera)).post(
        f"/api/pickups/{pickup.pk}/status/",
        {"status": "picked_up", "items": [{"material": "metal", "actual_kg": "2.5"}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "paper" in response.json()["errors"]["items"][0]
    assert refreshed(pickup.pk).status == "en_route"


# --- reading it: service and REST ---------------------------------------------------------------


def test_the_parties_read_the_receipt(completed, people):
    for who in ("customer", "member"):
        assert receipts.receipt_get(user=people[who], pickup_id=completed.pk) == receipt_of(
            completed
        )


@pytest.mark.parametrize("who", ["stranger", "other_member"])
def test_others_get_not_found_for_the_receipt(completed, people, who):
    with pytest.raises(NotFound):
        receipts.receipt_get(user=people[who], pickup_id=completed.pk)


@pytest.mark.parametrize("who", ["customer", "member"])
def test_get_receipt_over_rest(completed, people, who):
    response = client_for(people[who]).get(f"/api/pickups/{completed.pk}/receipt/")
    assert response.status_code == 200, response.json()
    body = response.json()
    issued_at = body.pop("issued_at")
    assert issued_at.startswith(str(receipt_of(completed).issued_at.year))
    assert body == {
        "number": f"R-{completed.pk:06d}",
        "pickup_id": completed.pk,
        "vendor": {"id": completed.vendor_id, "name": "Vera Metals"},
        "currency": "EUR",
        "lines": [
            {
                "material": "paper",
                "material_name": "Paper",
                "estimated_kg": "12.50",
                "actual_kg": "37.40",
                "price_per_kg": "0.12",
                "amount": "4.49",
            },
            {
                "material": "metal",
                "material_name": "Metal",
                "estimated_kg": "12.50",
                "actual_kg": "13.00",
                "price_per_kg": "0.80",
                "amount": "10.40",
            },
        ],
        "total_kg": "50.40",
        "total": "14.89",
    }


def test_the_pickup_carries_its_receipt_once_issued(customer, vera, other, run_on_commit):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "37.4"})
    client = client_for(customer)
    before = client.get(f"/api/pickups/{pickup.pk}/").json()
    assert before["receipt"] is None
    assert before["items"] == [
        {"material": "paper", "estimated_kg": "12.50", "actual_kg": "37.40", "price_per_kg": "0.12"}
    ]
    run_on_commit(
        client_for(member_of(vera)).post,
        f"/api/pickups/{pickup.pk}/status/",
        {"status": "completed"},
        format="json",
    )
    after = client.get(f"/api/pickups/{pickup.pk}/").json()
    assert after["status"] == "completed"
    assert after["receipt"] == client.get(f"/api/pickups/{pickup.pk}/receipt/").json()
    assert after["receipt"]["total"] == "4.49"


def test_no_receipt_before_it_is_issued_is_404(customer, vera, other, run_on_commit):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "1"})
    response = client_for(customer).get(f"/api/pickups/{pickup.pk}/receipt/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("who", ["stranger", "other_member"])
def test_another_users_receipt_is_404_like_a_missing_one(completed, people, who):
    client = client_for(people[who])
    response = client.get(f"/api/pickups/{completed.pk}/receipt/")
    missing = client.get(f"/api/pickups/{completed.pk + 1000}/receipt/")
    assert response.status_code == missing.status_code == 404
    assert response.json()["code"] == missing.json()["code"] == "not_found"
    assert "total" not in response.json()


def test_anonymous_receipt_is_401(completed):
    response = client_for(None).get(f"/api/pickups/{completed.pk}/receipt/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_receipt_cannot_be_written_over_rest(completed, people):
    response = client_for(people["customer"]).post(
        f"/api/pickups/{completed.pk}/receipt/", {"total": "1000"}, format="json"
    )
    assert response.status_code == 405
    assert receipt_of(completed).total == Decimal("14.89")


# --- the printable page --------------------------------------------------------------------------


def page_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["customer", "member"])
def test_the_receipt_page_renders_for_a_party(completed, people, who):
    response = page_for(people[who]).get(f"/pickups/{completed.pk}/receipt/")
    assert response.status_code == 200
    assert "pickups/receipt.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert f"Receipt R-{completed.pk:06d}" in html
    assert f"Pickup #{completed.pk}" in html
    assert "Vera Metals" in html and "alice" in html and "Alexanderplatz 1, Berlin" in html
    for text in ("Paper", "37.40", "0.12", "4.49", "Metal", "10.40", "50.40", "14.89 EUR"):
        assert text in html, text


def test_the_receipt_page_escapes_what_users_typed(customer, run_on_commit):
    vendor = VendorFactory(name="<b>Bold</b> & Co")
    pickup = run_on_commit(create_pickup, customer, address="<script>alert(1)</script>")
    member = member_of(vendor)
    run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member)
    for step, weights in (("en_route", None), ("picked_up", {"paper": Decimal("1")})):
        services.pickup_advance(pickup_id=pickup.pk, by=member, status=step, actual_weights=weights)
    run_on_commit(services.pickup_advance, pickup_id=pickup.pk, by=member, status="completed")

    html = page_for(customer).get(f"/pickups/{pickup.pk}/receipt/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Bold</b>" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html


def test_the_receipt_page_sends_anonymous_users_to_sign_in(completed):
    path = f"/pickups/{completed.pk}/receipt/"
    response = page_for(None).get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("who", ["stranger", "other_member"])
def test_the_receipt_page_is_404_for_others(completed, people, who):
    client = page_for(people[who])
    assert client.get(f"/pickups/{completed.pk}/receipt/").status_code == 404
    assert client.get(f"/pickups/{completed.pk + 1000}/receipt/").status_code == 404


def test_the_receipt_page_is_404_before_the_receipt_is_issued(customer, vera, other, run_on_commit):
    pickup = pickup_at(run_on_commit, customer, vera, "picked_up", {"paper": "1"})
    assert page_for(customer).get(f"/pickups/{pickup.pk}/receipt/").status_code == 404


def test_the_receipt_page_only_answers_get(completed, people):
    response = page_for(people["customer"]).post(f"/pickups/{completed.pk}/receipt/")
    assert response.status_code == 405


def test_signing_in_on_the_login_page_leads_to_the_receipt(completed, customer):
    customer.set_password("s3cret-pass")
    customer.save()
    path = f"/pickups/{completed.pk}/receipt/"
    client = Client()

    page = client.get(f"/accounts/login/?next={path}")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html
    assert f'value="{path}"' in html

    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope", "next": path})
    assert wrong.status_code == 200
    assert 'role="alert"' in wrong.content.decode()
    assert client.get(path).status_code == 302  # still signed out

    signed_in = client.post(
        "/accounts/login/", {"username": "alice", "password": "s3cret-pass", "next": path}
    )
    assert signed_in.status_code == 302
    assert signed_in["Location"] == path
    receipt_page = client.get(path)
    assert receipt_page.status_code == 200
    assert "14.89 EUR" in receipt_page.content.decode()


def test_signing_in_without_a_page_to_go_to_lands_on_one_that_exists(customer):
    customer.set_password("s3cret-pass")
    customer.save()
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "s3cret-pass"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/pickups/"
    assert response.status_code == 200


def test_the_login_page_does_not_redirect_off_site(customer):
    customer.set_password("s3cret-pass")
    customer.save()
    response = Client().post(
        "/accounts/login/",
        {"username": "alice", "password": "s3cret-pass", "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


# --- over the socket ------------------------------------------------------------------------------


@pytest.fixture
def socket_world(customer, vera, other):
    return {
        "customer_key": token_for(customer),
        "member": member_of(vera),
        "member_key": token_for(member_of(vera)),
        "other_key": token_for(member_of(other)),
    }


def create_pickup_for(username: str) -> int:
    """A paper-and-metal pickup of the user's, offered (on commit) to the vendor collecting both."""
    customer = UserFactory(username=username)
    pickup = create_pickup(customer, materials=("paper", "metal"))
    assert PickupRequest.objects.get(pk=pickup.pk).status == "offered"
    return pickup.pk


# Consumers run the ORM in worker threads: the data must really be committed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_the_whole_job_over_the_socket_ends_with_a_receipt(socket_world):
    customer = await connect("/ws/pickups/", socket_world["customer_key"])
    vendor = await connect("/ws/pickups/", socket_world["member_key"])
    pickup_id = await database_sync_to_async(lambda: create_pickup_for("alice"))()
    assert (await ask(vendor, {"action": "accept", "pickup_id": pickup_id}))[
        "type"
    ] == "pickup.accepted"
    assert (await ask(vendor, {"action": "update", "pickup_id": pickup_id, "status": "en_route"}))[
        "type"
    ] == "pickup.en_route"

    unweighed = await ask(
        vendor, {"action": "update", "pickup_id": pickup_id, "status": "picked_up"}
    )
    assert (unweighed["type"], unweighed["code"]) == ("error", "validation_error")
    assert "missing: metal, paper." in unweighed["errors"]["items"][0]

    weighed = {
        "action": "update",
        "pickup_id": pickup_id,
        "status": "picked_up",
        "items": [
            {"material": "paper", "actual_kg": "37.4"},
            {"material": "metal", "actual_kg": 13},
        ],
    }
    assert (await ask(vendor, weighed))["type"] == "pickup.picked_up"
    before = (await ask(customer, {"action": "get", "pickup_id": pickup_id}))["pickup"]
    assert before["receipt"] is None
    assert [i["price_per_kg"] for i in before["items"]] == ["0.12", "0.80"]

    done = await ask(vendor, {"action": "update", "pickup_id": pickup_id, "status": "completed"})
    assert done["type"] == "pickup.completed"

    for socket in (customer, vendor):
        detail = (await ask(socket, {"action": "get", "pickup_id": pickup_id}))["pickup"]
        receipt = detail["receipt"]
        assert receipt["number"] == f"R-{pickup_id:06d}"
        assert [line["amount"] for line in receipt["lines"]] == ["4.49", "10.40"]
        assert (receipt["total"], receipt["total_kg"], receipt["currency"]) == (
            "14.89",
            "50.40",
            "EUR",
        )
    outsider = await connect("/ws/pickups/", socket_world["other_key"])
    assert (await ask(outsider, {"action": "get", "pickup_id": pickup_id}))["code"] == "not_found"
