"""The vendor portal and the customer's pages in a real Chromium against the real stack.

Two browser contexts sign in with the session (a customer and a vendor member); the customer
requests a pickup; the vendor's board shows the offer without reloading, and each side's page
follows every step of the other's, live, through to the receipt. Screenshots of the main screens
are saved for the docs (``docs/screenshots``, or ``SCREENSHOTS_DIR``).
"""

import os
import re
import time
from pathlib import Path

import pytest

from tests.conftest import require_chromium, require_service
from tests.e2e.stack import REPO, SETUP, Stack

SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", REPO / "docs" / "screenshots"))
PASSWORD = "demo-pass-123"
# The demo customer's street, and a point 700 m from it where the vendor's browser "is".
ALEXANDERPLATZ = (52.5219, 13.4132)
ON_THE_WAY = {"latitude": 52.5276, "longitude": 13.4180}
OFFER_SHOWN_WITHIN_MS = 2000
STEP_SHOWN_WITHIN_MS = 5000

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A stack of its own, so no other test's pickups take the demo vendors' capacity."""
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    require_chromium()
    workdir = tmp_path_factory.mktemp("browser")
    stack = Stack(
        workdir,
        env={"DJANGO_STATIC_ROOT": str(workdir / "static")},
        setup=(*SETUP, ("collectstatic", "--noinput", "--verbosity", "0")),
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


class Person:
    """One signed-in browser context, collecting what its pages print to the console."""

    def __init__(self, chromium, site: Stack, username: str, **context_options) -> None:
        self.context = chromium.new_context(
            base_url=site.http,
            viewport={"width": 1280, "height": 860},
            timezone_id="Europe/Berlin",
            locale="en-GB",
            **context_options,
        )
        self.console: list[str] = []
        self.page = self.context.new_page()
        self.page.on(
            "console",
            lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        self.page.goto("/accounts/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.wait_live()

    def wait_live(self) -> None:
        self.page.locator("#live-status[data-state=live]").wait_for(timeout=10_000)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def people(chromium, site):
    made: list[Person] = []

    def sign_in(username: str, **options) -> Person:
        person = Person(chromium, site, username, **options)
        made.append(person)
        return person

    yield sign_in
    for person in made:
        person.close()


def request_pickup(alice: Person, **kg: str) -> int:
    page = alice.page
    for material, weight in kg.items():
        page.get_by_label(material).fill(weight)
    page.get_by_label("Address").fill("Alexanderplatz 1, 10178 Berlin")
    page.get_by_label("Latitude").fill(str(ALEXANDERPLATZ[0]))
    page.get_by_label("Longitude").fill(str(ALEXANDERPLATZ[1]))
    page.get_by_label("Contact phone").fill("+49 30 1234567")
    page.get_by_role("button", name="Request pickup").click()
    page.wait_for_url(re.compile(r"/pickups/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def expect_status(person: Person, pickup_id: int, status: str) -> None:
    from playwright.sync_api import expect

    expect(person.page.locator(f"#pickup[data-status={status}]")).to_be_visible(
        timeout=STEP_SHOWN_WITHIN_MS
    )


def test_a_pickup_from_request_to_receipt_in_two_browsers(people):
    from playwright.sync_api import expect

    alice = people("alice")
    expect(alice.page).to_have_url(re.compile(r"/pickups/$"))
    victor = people(
        "victor", geolocation=ON_THE_WAY, permissions=["geolocation"]
    )  # the nearest vendor
    board = victor.page
    expect(board).to_have_url(re.compile(r"/portal/\d+/$"))
    # Marks this page: were it reloaded, the mark would be gone.
    board.evaluate("window.sameDocument = true")

    pickup_id = request_pickup(alice, **{"Paper (kg)": "12.5", "Cardboard (kg)": "4"})
    asked = time.monotonic()
    offer = board.locator(f"article.offer[data-pickup-id='{pickup_id}']")
    expect(offer).to_be_visible(timeout=OFFER_SHOWN_WITHIN_MS)
    shown_after = time.monotonic() - asked
    print(f"offer on the vendor's board {shown_after * 1000:.0f} ms after the customer's page")
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    expect(offer).to_contain_text("Paper")
    expect(offer).not_to_contain_text("+49 30 1234567")  # contact details come with the job
    expect(alice.page.locator("#pickup[data-status=offered]")).to_contain_text("Victor Recycling")
    victor.screenshot("portal-offer")
    alice.screenshot("customer-offered")

    offer.get_by_role("button", name="Accept").click()
    expect(board.locator("#flash")).to_contain_text(f"You accepted pickup #{pickup_id}.")
    job = board.locator(f"article.job[data-pickup-id='{pickup_id}']")
    expect(job).to_contain_text("+49 30 1234567")
    expect_status(alice, pickup_id, "accepted")
    expect(alice.page.get_by_role("button", name="Choose another vendor")).to_be_visible()

    job.get_by_role("button", name="Set off (en route)").click()
    expect_status(alice, pickup_id, "en_route")
    job.get_by_label("Share my location with the customer").check()
    expect(job.locator(".share-state")).to_contain_text("Shared at", timeout=STEP_SHOWN_WITHIN_MS)
    position = alice.page.locator("#vendor-position")
    expect(position).to_contain_text("52.52760, 13.41800", timeout=STEP_SHOWN_WITHIN_MS)
    expect(position).to_contain_text("km away")
    expect(alice.page.locator(".map .vendor")).to_be_visible()
    alice.screenshot("customer-tracking")
    victor.screenshot("portal-en-route")

    job.get_by_label("Paper").fill("11.2")
    job.get_by_label("Cardboard").fill("3.8")
    job.get_by_role("button", name="Picked up").click()
    expect_status(alice, pickup_id, "picked_up")
    expect(alice.page.locator("#pickup")).to_contain_text("11.20 kg weighed")

    job.get_by_role("button", name="Complete").click()
    expect_status(alice, pickup_id, "completed")
    receipt_link = alice.page.locator("#pickup .receipt a")
    expect(receipt_link).to_be_visible(timeout=STEP_SHOWN_WITHIN_MS)
    history_row = board.locator(f"#history tr[data-pickup-id='{pickup_id}']")
    expect(history_row.get_by_role("link")).to_be_visible(timeout=STEP_SHOWN_WITHIN_MS)
    expect(alice.page.locator(".timeline li")).to_have_count(6)  # create … complete
    alice.screenshot("customer-completed")
    victor.screenshot("portal-history")

    number = receipt_link.inner_text()
    receipt_link.click()
    expect(alice.page.get_by_role("heading", name=f"Receipt {number}")).to_be_visible()
    alice.screenshot("receipt")

    assert board.evaluate("window.sameDocument") is True
    assert alice.console == [] and victor.console == []


def test_a_rejected_offer_moves_on_and_both_boards_follow(people):
    from playwright.sync_api import expect

    alice = people("alice")
    victor = people("victor")
    vera = people("vera")  # the next nearest that collects paper
    pickup_id = request_pickup(alice, **{"Paper (kg)": "5"})
    offer = victor.page.locator(f"article.offer[data-pickup-id='{pickup_id}']")
    expect(offer).to_be_visible(timeout=OFFER_SHOWN_WITHIN_MS)

    # With the keyboard alone: the reason, then Enter submits the reject form.
    offer.get_by_label("Reason").focus()
    victor.page.keyboard.type("Truck full")
    victor.page.keyboard.press("Enter")
    expect(offer).to_have_count(0, timeout=STEP_SHOWN_WITHIN_MS)
    expect(vera.page.locator(f"article.offer[data-pickup-id='{pickup_id}']")).to_be_visible(
        timeout=STEP_SHOWN_WITHIN_MS
    )
    expect(alice.page.locator("#pickup[data-status=offered]")).to_contain_text(
        "Vera Metals", timeout=STEP_SHOWN_WITHIN_MS
    )
    unread = victor.page.get_by_test_id("unread-count")
    expect(unread).not_to_have_text("0")

    # The customer cancels; Vera's offer leaves her board.
    alice.page.once("dialog", lambda dialog: dialog.accept())
    alice.page.get_by_role("button", name="Cancel pickup").click()
    expect_status(alice, pickup_id, "cancelled")
    expect(vera.page.locator(f"article.offer[data-pickup-id='{pickup_id}']")).to_have_count(
        0, timeout=STEP_SHOWN_WITHIN_MS
    )
    victor.page.get_by_role("button", name="Mark all read").click()
    expect(unread).to_have_text("0")
    assert alice.console == [] and victor.console == [] and vera.console == []


def test_a_change_announced_while_the_panel_is_fetched_is_shown_too(people):
    """The customer's panel is being fetched (its answer still says "accepted") when the vendor
    sets off: the page must fetch it once more and show "en route", not keep the older answer."""
    from playwright.sync_api import expect

    alice = people("alice")
    victor = people("victor")
    pickup_id = request_pickup(alice, **{"Paper (kg)": "3"})
    offer = victor.page.locator(f"article.offer[data-pickup-id='{pickup_id}']")
    expect(offer).to_be_visible(timeout=OFFER_SHOWN_WITHIN_MS)
    expect_status(alice, pickup_id, "offered")

    alice.page.evaluate(
        """() => {
            window.seenKinds = [];
            document.body.addEventListener("notification", (event) => {
                window.seenKinds.push(event.detail.kind);
            });
        }"""
    )
    held = []

    def hold_the_first_answer(route) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))  # the server's answer now: "accepted"

    alice.page.route(f"**/pickups/{pickup_id}/panel/", hold_the_first_answer)
    offer.get_by_role("button", name="Accept").click()
    alice.page.wait_for_function("() => window.seenKinds.includes('pickup.accepted')")
    victor.page.locator(f"article.job[data-pickup-id='{pickup_id}']").get_by_role(
        "button", name="Set off (en route)"
    ).click()
    alice.page.wait_for_function(
        "() => window.seenKinds.includes('pickup.en_route')", timeout=STEP_SHOWN_WITHIN_MS
    )
    assert len(held) == 1, "the first fetch was not held"
    route, stale = held[0]
    route.fulfill(response=stale)

    expect_status(alice, pickup_id, "en_route")
    assert alice.console == [] and victor.console == []


def wait_until(person: Person, condition, what: str) -> None:
    """Lets Playwright dispatch (route handlers run while it waits) until ``condition`` holds."""
    deadline = time.monotonic() + STEP_SHOWN_WITHIN_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        person.page.wait_for_timeout(20)


def test_a_panel_is_not_replaced_under_a_form_being_sent(people):
    """The vendor presses "Set off" just as a fresh copy of the jobs panel arrives: the copy is
    held back, the press gets its message, and the panel then shows the next step."""
    from playwright.sync_api import expect

    alice = people("alice")
    victor = people("victor")
    page = victor.page
    pickup_id = request_pickup(alice, **{"Paper (kg)": "2"})
    page.locator(f"article.offer[data-pickup-id='{pickup_id}']").get_by_role(
        "button", name="Accept"
    ).click()
    job = page.locator(f"article.job[data-pickup-id='{pickup_id}']")
    expect(job).to_be_visible(timeout=STEP_SHOWN_WITHIN_MS)
    page.evaluate(
        """() => {
            window.answered = [];
            document.body.addEventListener("htmx:afterRequest", (event) => {
                window.answered.push(event.detail.pathInfo.requestPath);
            });
        }"""
    )
    panel_answers, presses = [], []
    page.route(
        "**/portal/*/jobs/",
        lambda route: (
            route.continue_() if panel_answers else panel_answers.append((route, route.fetch()))
        ),
    )
    page.route(f"**/portal/pickups/{pickup_id}/advance/", lambda route: presses.append(route))

    page.evaluate("htmx.trigger(document.body, 'pickups-changed')")  # a fresh copy is fetched
    wait_until(victor, lambda: panel_answers, "the jobs panel's fetch")
    job.get_by_role("button", name="Set off (en route)").click()
    wait_until(victor, lambda: presses, "the press to be sent")
    route, copy = panel_answers[0]
    route.fulfill(response=copy)  # arrives while the press is under way
    page.wait_for_function("() => window.answered.some((path) => path.endsWith('/jobs/'))")
    presses[0].continue_()

    expect(page.locator("#flash")).to_contain_text(f"You are on the way to pickup #{pickup_id}.")
    expect(job.get_by_role("button", name="Picked up")).to_be_visible(timeout=STEP_SHOWN_WITHIN_MS)
    expect_status(alice, pickup_id, "en_route")
    assert alice.console == [] and victor.console == []


def test_going_offline_and_changing_the_price_list(people):
    from playwright.sync_api import expect

    vince = people("vince")
    page = vince.page
    page.get_by_role("button", name="Go offline").click()
    expect(page.get_by_test_id("online-state")).to_have_text("Offline")
    page.get_by_role("button", name="Go online").click()
    expect(page.get_by_test_id("online-state")).to_have_text("Online")

    page.get_by_label("Capacity").fill("6")
    page.get_by_label("Metal scrap", exact=True).check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings")).to_contain_text("Give a price for what you collect.")
    page.get_by_label("Metal scrap price per kg").fill("0.95")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#flash")).to_contain_text("Settings saved.")
    expect(page.locator("#status")).to_contain_text("of 6 jobs")
    vince.screenshot("portal-settings")

    # A narrow screen: everything still reachable, one column.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()
    assert vince.console == []


def test_swagger_ui_and_redoc_load_nothing_from_outside(chromium, site):
    """The API's own pages render the whole schema from the platform's files alone: every request
    elsewhere is refused and recorded."""
    from playwright.sync_api import expect

    context = chromium.new_context(base_url=site.http)
    outside: list[str] = []

    def only_the_platform(route) -> None:
        if route.request.url.startswith(site.http):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_platform)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/api/docs/")
        swagger_operation = page.locator(
            ".opblock-summary-description", has_text="Request a pickup"
        )
        expect(swagger_operation).to_be_visible(timeout=STEP_SHOWN_WITHIN_MS)
        page.goto("/api/redoc/")
        expect(page.locator("h2", has_text="Request a pickup")).to_be_visible(
            timeout=STEP_SHOWN_WITHIN_MS
        )
    finally:
        context.close()
    assert outside == []
    assert errors == []
