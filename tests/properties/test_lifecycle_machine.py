"""The pickup lifecycle as a Hypothesis state machine.

Several actors take turns in random order on a handful of pickups: customers create, edit,
cancel and release the vendor; the members of four vendors (small capacities, different
materials, one far away) accept, decline and work the jobs, go offline and change their
settings; the clock moves, late and duplicate timers and task deliveries arrive, and the beat
runs the sweeps. Each step runs the work queued after commit at once (Celery is eager), so a
step ends where the system would settle. After every step the invariants below are checked
against the database:

* a vendor's ``open_jobs`` is the number of pickups it holds, and it never takes a new job while
  full (only lowering the capacity leaves it above);
* a pickup has a vendor exactly while the vendor holds it, never one that refused it, and is
  never offered to an ineligible vendor;
* every pickup's history is a path through ``TRANSITIONS`` from ``pending`` to its status, its
  rejections are the history's, and a terminal pickup never changes again;
* every notification matches one transition (or edit), in order, with the status and version
  it reported, and went to exactly the customer and the vendor concerned;
* after a sweep ran, nothing it should have handled is left: no offer past its deadline, no
  retry due, no window ended; and once every retry is due, no unassigned pickup has a vendor.

The refusals a service may give are part of the model: each rule predicts from the state before
it whether the action is allowed and checks the service agrees.
"""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from notifications.models import Notification
from pickups import services, tasks
from pickups.models import PickupRejection, PickupRequest, PickupTransition, Receipt
from pickups.services import ItemInput
from pickups.transitions import (
    CAPACITY_HELD,
    EDITABLE,
    EXPIRABLE,
    RELOCATABLE,
    TERMINAL,
    TRANSITIONS,
    VENDOR_HELD,
    VENDOR_STEPS,
    Event,
    Status,
)
from procurement_system.errors import DomainError
from tests.factories import HOME, MaterialFactory, UserFactory, VendorFactory
from vendors.geo import haversine_km
from vendors.models import Vendor
from vendors.selectors import vendor_candidates
from vendors.services import PriceInput, vendor_update_settings

pytestmark = pytest.mark.django_db

START = datetime(2031, 3, 3, 8, 0, tzinfo=UTC)
MATERIALS = ("paper", "metal", "glass")
CUSTOMERS = ("alice", "bob")
# Home and a spot about 55 km north: only the far vendor serves it, unless another one widens
# its service radius.
LOCATIONS = (HOME, (HOME[0] + 0.5, HOME[1] + 0.02))
# name, (lat, lon), capacity, materials
VENDORS = (
    ("Near", (HOME[0] + 0.005, HOME[1]), 1, ("paper", "metal")),
    ("Mid", (HOME[0] + 0.03, HOME[1]), 2, ("paper", "metal", "glass")),
    ("Far", (HOME[0] + 0.5, HOME[1]), 2, ("paper", "glass")),
    ("Glass", (HOME[0] - 0.01, HOME[1]), 1, ("glass",)),
)
OFFER_TIMEOUT = django_settings.OFFER_TIMEOUT_SECONDS
# Without the explain phase, which re-runs a failing example under a tracer and is slow here.
PHASES = tuple(phase for phase in Phase if phase != Phase.explain)

# The notification each announced event sends (a retry is followed at once by an offer, which
# announces it).
KIND_OF_EVENT = {
    "create": "pickup.created",
    Event.ASSIGN: "pickup.offered",
    Event.NO_VENDOR: "pickup.unassigned",
    Event.OFFER_TIMEOUT: "offer.expired",
    Event.ACCEPT: "pickup.accepted",
    Event.VENDOR_REJECT: "pickup.rejected",
    Event.CUSTOMER_REJECT: "pickup.rejected",
    Event.START: "pickup.en_route",
    Event.PICK_UP: "pickup.picked_up",
    Event.COMPLETE: "pickup.completed",
    Event.CANCEL: "pickup.cancelled",
    Event.EXPIRE: "pickup.expired",
}
REJECTION_ROLE_OF_EVENT = {
    Event.VENDOR_REJECT: PickupRejection.Role.VENDOR,
    Event.CUSTOMER_REJECT: PickupRejection.Role.CUSTOMER,
    Event.OFFER_TIMEOUT: PickupRejection.Role.TIMEOUT,
}
NEXT_STEP = {
    Status.ACCEPTED: Status.EN_ROUTE,
    Status.EN_ROUTE: Status.PICKED_UP,
    Status.PICKED_UP: Status.COMPLETED,
}
CANCELLABLE = frozenset(status for (status, event) in TRANSITIONS if event == Event.CANCEL)

material_sets = st.sets(st.sampled_from(MATERIALS), min_size=1).map(sorted)
vendor_index = st.integers(0, len(VENDORS) - 1)
# Who acts for a vendor: mostly the one that holds the pickup, sometimes any of them.
vendor_actor = st.one_of(st.just("holder"), vendor_index)
kilograms = st.decimals(min_value=0, max_value=1000, places=2)
window_minutes = st.sampled_from([5, 30, 90, 240, 24 * 60])


def refused(error: DomainError) -> str:
    return f"{type(error).__name__}({error.code}): {error.message} {error.errors or ''}"


class LifecycleMachine(RuleBasedStateMachine):
    pickups = Bundle("pickups")

    def __init__(self) -> None:
        super().__init__()
        # Every example runs in a savepoint of the test's transaction and leaves nothing behind.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._traveller = time_machine.travel(START, tick=False)
        self.clock = self._traveller.start()
        for code in MATERIALS:
            MaterialFactory(code=code)
        self.customers = [UserFactory(username=name) for name in CUSTOMERS]
        self.vendors: list[Vendor] = []
        self.members = []
        for name, (lat, lon), capacity, materials in VENDORS:
            member = UserFactory(username=f"member-of-{name.lower()}")
            self.vendors.append(
                VendorFactory(
                    name=name,
                    latitude=lat,
                    longitude=lon,
                    capacity=capacity,
                    materials=list(materials),
                    member=member,
                )
            )
            self.members.append(member)
        self.member_of_vendor = {
            v.pk: m.pk for v, m in zip(self.vendors, self.members, strict=True)
        }
        self.keys: dict[tuple[int, str], int] = {}  # (customer, idempotency key) -> pickup
        self.edits: Counter[int] = Counter()  # pickup -> accepted detail edits
        self.swept: dict[str, datetime] = {}  # sweep -> when it last ran
        self.terminal: dict[int, tuple] = {}  # pickup -> its snapshot once terminal
        self.open_before: dict[int, int] = {v.pk: 0 for v in self.vendors}
        self.seen_transition_id = 0

    def teardown(self) -> None:
        try:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)
        finally:
            self._traveller.stop()

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def run(call, *args, **kwargs):
        """Call a service or task and run what it queued after commit, as the workers would."""
        with TestCase.captureOnCommitCallbacks(execute=True):
            return call(*args, **kwargs)

    def attempt(self, allowed: bool, call, **kwargs):
        """Call a service the model says is ``allowed`` (or must be refused with a domain
        error) and check that the service agrees."""
        try:
            result = self.run(call, **kwargs)
        except DomainError as error:
            assert not allowed, f"{call.__name__}{kwargs} was refused: {refused(error)}"
            return None
        assert allowed, f"{call.__name__}{kwargs} was allowed but should have been refused"
        return result

    @staticmethod
    def fresh(pickup_id: int) -> PickupRequest:
        return PickupRequest.objects.get(pk=pickup_id)

    def acting_vendor(self, actor, pickup: PickupRequest) -> int:
        if actor == "holder":
            return next((i for i, v in enumerate(self.vendors) if v.pk == pickup.vendor_id), 0)
        return actor

    # --- customers ----------------------------------------------------------------------------

    @initialize(
        target=pickups,
        customer=st.sampled_from(range(len(CUSTOMERS))),
        materials=material_sets,
        minutes=window_minutes,
    )
    def first_pickup(self, customer, materials, minutes):
        return self.customer_creates(customer, materials, 0, minutes, None)

    @rule(
        target=pickups,
        customer=st.sampled_from(range(len(CUSTOMERS))),
        materials=material_sets,
        where=st.sampled_from([0, 0, 1]),
        minutes=window_minutes,
        key=st.sampled_from([None, None, "k1", "k2"]),
    )
    def customer_creates(self, customer, materials, where, minutes, key):
        now = timezone.now()
        earlier = self.keys.get((customer, key)) if key else None
        pickup, created = self.run(
            services.pickup_create,
            customer=self.customers[customer],
            address="Alexanderplatz 1, Berlin",
            latitude=LOCATIONS[where][0],
            longitude=LOCATIONS[where][1],
            window_start=now,
            window_end=now + timedelta(minutes=minutes),
            items=[ItemInput(code, Decimal("12.50")) for code in materials],
            idempotency_key=key,
        )
        if earlier is not None:
            assert not created and pickup.pk == earlier, "the same key created a second pickup"
        else:
            assert created
            if key:
                self.keys[(customer, key)] = pickup.pk
        return pickup.pk

    @rule(pickup=pickups, by_owner=st.booleans())
    def customer_cancels(self, pickup, by_owner):
        before = self.fresh(pickup)
        owner = next(c for c in self.customers if c.pk == before.customer_id)
        other = next(c for c in self.customers if c.pk != before.customer_id)
        allowed = by_owner and before.status in CANCELLABLE
        after = self.attempt(
            allowed,
            services.pickup_cancel,
            pickup_id=pickup,
            by=owner if by_owner else other,
            reason="changed my mind",
        )
        if after is not None:
            assert self.fresh(pickup).status == Status.CANCELLED

    @rule(pickup=pickups)
    def customer_rejects_the_vendor(self, pickup):
        before = self.fresh(pickup)
        customer = next(c for c in self.customers if c.pk == before.customer_id)
        allowed = before.status == Status.ACCEPTED
        if self.attempt(allowed, services.pickup_reject, pickup_id=pickup, by=customer):
            after = self.fresh(pickup)
            assert after.vendor_id != before.vendor_id
            assert after.rejections.filter(vendor_id=before.vendor_id, role="customer").exists()

    @rule(
        pickup=pickups,
        change=st.one_of(
            st.builds(lambda text: {"notes": text}, st.sampled_from(["ring twice", "gate B"])),
            st.builds(lambda m: {"window_end": m}, st.sampled_from([-10, 1, 60, 600])),
            st.builds(lambda codes: {"items": codes}, material_sets),
            st.builds(lambda where: {"location": where}, st.sampled_from(range(len(LOCATIONS)))),
        ),
    )
    def customer_edits(self, pickup, change):
        before = self.fresh(pickup)
        customer = next(c for c in self.customers if c.pk == before.customer_id)
        allowed = before.status in EDITABLE
        if "window_end" in change:
            changes = {"window_end": timezone.now() + timedelta(minutes=change["window_end"])}
            allowed = allowed and change["window_end"] > 0
        elif "items" in change:
            changes = {"items": [ItemInput(code, Decimal("3")) for code in change["items"]]}
            allowed = before.status in RELOCATABLE
        elif "location" in change:
            lat, lon = LOCATIONS[change["location"]]
            changes = {"latitude": lat, "longitude": lon}
            allowed = before.status in RELOCATABLE
        else:
            changes = change
        if self.attempt(
            allowed, services.pickup_update_details, pickup_id=pickup, by=customer, changes=changes
        ):
            self.edits[pickup] += 1

    # --- vendors ------------------------------------------------------------------------------

    @rule(pickup=pickups, actor=vendor_actor)
    def vendor_accepts(self, pickup, actor):
        before = self.fresh(pickup)
        index = self.acting_vendor(actor, before)
        allowed = (
            before.status == Status.OFFERED
            and before.vendor_id == self.vendors[index].pk
            and before.offer_expires_at > timezone.now()
        )
        if self.attempt(allowed, services.pickup_accept, pickup_id=pickup, by=self.members[index]):
            after = self.fresh(pickup)
            assert (after.status, after.vendor_id) == (Status.ACCEPTED, before.vendor_id)

    @rule(pickup=pickups, actor=vendor_actor)
    def vendor_declines(self, pickup, actor):
        before = self.fresh(pickup)
        index = self.acting_vendor(actor, before)
        allowed = before.status == Status.OFFERED and before.vendor_id == self.vendors[index].pk
        if self.attempt(
            allowed,
            services.pickup_reject,
            pickup_id=pickup,
            by=self.members[index],
            reason="too busy",
        ):
            assert self.fresh(pickup).vendor_id != before.vendor_id

    @rule(
        pickup=pickups,
        actor=vendor_actor,
        status=st.one_of(st.just("next"), st.sampled_from(sorted(VENDOR_STEPS))),
        weighed=st.sampled_from(["fitting"] * 3 + ["none", "all", "all but one", "one too many"]),
        kg=kilograms,
    )
    def vendor_moves_the_job_on(self, pickup, actor, status, weighed, kg):
        """The vendor's next step (or any other), with the weights it needs (or wrong ones)."""
        before = self.fresh(pickup)
        index = self.acting_vendor(actor, before)
        if status == "next":
            status = NEXT_STEP.get(Status(before.status), Status.EN_ROUTE)
        event = VENDOR_STEPS[status]
        codes = sorted(before.items.values_list("material_id", flat=True))
        if weighed == "fitting":
            weighed = "all" if event == Event.PICK_UP else "none"
        weights = {
            "none": None,
            "all": dict.fromkeys(codes, kg),
            "all but one": dict.fromkeys(codes[1:], kg),
            "one too many": dict.fromkeys([*codes, "wood"], kg),
        }[weighed]
        weights_fit = set(weights or ()) == set(codes) if event == Event.PICK_UP else not weights
        allowed = (
            before.vendor_id == self.vendors[index].pk
            and (Status(before.status), event) in TRANSITIONS
            and weights_fit
        )
        if self.attempt(
            allowed,
            services.pickup_advance,
            pickup_id=pickup,
            by=self.members[index],
            status=status,
            actual_weights=weights,
        ):
            assert self.fresh(pickup).status == status

    @rule(pickup=pickups, seconds=st.sampled_from([OFFER_TIMEOUT - 1, OFFER_TIMEOUT]))
    def vendor_answers_at_the_deadline(self, pickup, seconds):
        """The holder accepts an offer just before or right at its deadline, before the sweep
        could withdraw it: in time is taken, at the deadline is refused."""
        before = self.fresh(pickup)
        if before.status == Status.OFFERED:
            moment = before.status_changed_at + timedelta(seconds=seconds)
            self.clock.shift(max(moment - timezone.now(), timedelta(0)))
        self.vendor_accepts(pickup, "holder")

    @rule(pickup=pickups, steps=st.integers(1, 3), kg=kilograms)
    def vendor_works_the_job(self, pickup, steps, kg):
        """The holder accepts an offer and takes the job up to ``steps`` steps further at once,
        so that whole jobs are done often, not only by chance."""
        if self.fresh(pickup).status == Status.OFFERED:
            self.vendor_accepts(pickup, "holder")
        for _ in range(steps):
            if self.fresh(pickup).status not in NEXT_STEP:
                break
            self.vendor_moves_the_job_on(pickup, "holder", "next", "fitting", kg)

    @rule(
        vendor=vendor_index,
        change=st.one_of(
            st.fixed_dictionaries({"is_online": st.booleans()}),
            st.fixed_dictionaries({"capacity": st.integers(0, 2)}),
            st.fixed_dictionaries({"service_radius_km": st.sampled_from([2.0, 10.0, 80.0])}),
            st.fixed_dictionaries(
                {
                    "materials": st.sets(st.sampled_from(MATERIALS)).map(
                        lambda codes: [PriceInput(c, Decimal("0.25")) for c in sorted(codes)]
                    )
                }
            ),
        ),
    )
    def vendor_changes_settings(self, vendor, change):
        self.attempt(
            True,
            vendor_update_settings,
            vendor_id=self.vendors[vendor].pk,
            by=self.members[vendor],
            **change,
        )

    # --- the clock, timers, redeliveries and the beat ----------------------------------------

    @rule(seconds=st.sampled_from([1, 30, OFFER_TIMEOUT + 1, 600, 3600]))
    def clock_moves(self, seconds):
        self.clock.shift(timedelta(seconds=seconds))

    @rule(sweep=st.sampled_from(["offers", "retries", "expiry"]))
    def beat_runs_a_sweep(self, sweep):
        self.sweep(sweep)

    @rule(seconds=st.sampled_from([5, 60, OFFER_TIMEOUT + 1]))
    def beat_ticks(self, seconds):
        """Time passes and every sweep runs, as the beat would schedule them."""
        self.clock.shift(timedelta(seconds=seconds))
        for sweep in ("offers", "retries", "expiry"):
            self.sweep(sweep)

    @rule()
    def everything_settles(self):
        """Long enough for every retry to fall due: afterwards no unassigned pickup has a
        vendor that could take it."""
        self.clock.shift(timedelta(seconds=django_settings.UNASSIGNED_RETRY_MAX_SECONDS + 1))
        for sweep in ("expiry", "offers", "retries"):
            self.sweep(sweep)
        for pickup in PickupRequest.objects.filter(status=Status.UNASSIGNED):
            candidates = vendor_candidates(
                latitude=pickup.latitude,
                longitude=pickup.longitude,
                material_codes=list(pickup.items.values_list("material_id", flat=True)),
                exclude_vendor_ids=set(pickup.rejections.values_list("vendor_id", flat=True)),
            )
            assert not candidates, (
                f"pickup {pickup.pk} stays unassigned though "
                f"{[c.vendor.name for c in candidates]} could take it"
            )

    def sweep(self, name: str) -> None:
        task = {
            "offers": tasks.expire_offers_task,
            "retries": tasks.retry_unassigned_task,
            "expiry": tasks.expire_pickups_task,
        }[name]
        self.run(task)
        self.swept[name] = timezone.now()

    @rule(pickup=pickups, stale=st.sampled_from([0, 0, 1, 2]))
    def offer_timer_fires(self, pickup, stale):
        """A timer for this offer (``stale`` 0) or an older one arrives, maybe twice."""
        before = self.fresh(pickup)
        due = (
            before.status == Status.OFFERED
            and stale == 0
            and before.offer_expires_at <= timezone.now()
        )
        withdrawn = self.run(
            services.pickup_expire_offer, pickup_id=pickup, version=before.version - stale
        )
        assert withdrawn == due
        if not due:
            assert self.fresh(pickup).version == before.version

    @rule(pickup=pickups)
    def assignment_is_redelivered(self, pickup):
        before = self.fresh(pickup)
        self.run(tasks.assign_vendor_task, pickup)
        after = self.fresh(pickup)
        assert (after.status, after.version) == (before.status, before.version)

    @rule(vendor=vendor_index)
    def vendor_retry_is_redelivered(self, vendor):
        self.run(tasks.retry_unassigned_for_vendor_task, self.vendors[vendor].pk)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def the_books_balance(self):
        now = timezone.now()
        pickups = {p.pk: p for p in PickupRequest.objects.prefetch_related("items")}
        vendors = {v.pk: v for v in Vendor.objects.prefetch_related("materials").order_by("pk")}
        history: dict[int, list[PickupTransition]] = defaultdict(list)
        for t in PickupTransition.objects.order_by("id"):
            history[t.pickup_id].append(t)
        rejections: dict[int, list[PickupRejection]] = defaultdict(list)
        for r in PickupRejection.objects.order_by("id"):
            rejections[r.pickup_id].append(r)
        receipts = set(Receipt.objects.values_list("pickup_id", flat=True))

        self.check_vendors(pickups, vendors)
        for pickup in pickups.values():
            self.check_pickup(pickup, history[pickup.pk], rejections[pickup.pk], receipts, now)
            self.check_new_offers(pickup, history[pickup.pk], vendors)
        self.check_notifications(pickups, history)
        self.check_terminal(pickups, history, rejections)
        self.seen_transition_id = max(
            (t.pk for ts in history.values() for t in ts), default=self.seen_transition_id
        )
        self.open_before = {pk: v.open_jobs for pk, v in vendors.items()}

    def check_vendors(self, pickups, vendors) -> None:
        held = Counter(p.vendor_id for p in pickups.values() if p.status in CAPACITY_HELD)
        for vendor in vendors.values():
            assert vendor.open_jobs == held[vendor.pk], (
                f"{vendor.name}: open_jobs {vendor.open_jobs} but holds {held[vendor.pk]}"
            )
            # Above capacity only when the capacity was lowered below the jobs it held.
            assert vendor.open_jobs <= max(vendor.capacity, self.open_before[vendor.pk]), (
                f"{vendor.name} took a job while full"
            )

    def check_new_offers(self, pickup, transitions, vendors) -> None:
        """An offer made in this step went to a vendor that could take it then."""
        codes = {item.material_id for item in pickup.items.all()}
        refused = set()
        for t in transitions:
            if t.event in REJECTION_ROLE_OF_EVENT:
                refused.add(t.vendor_id)
            if t.event != Event.ASSIGN or t.pk <= self.seen_transition_id:
                continue
            vendor = vendors[t.vendor_id]
            assert vendor.is_online and vendor.is_active, f"offered to offline {vendor.name}"
            assert vendor.open_jobs <= vendor.capacity, f"{vendor.name} offered beyond capacity"
            assert codes <= {m.material_id for m in vendor.materials.all()}, (
                f"{vendor.name} was offered materials it does not collect"
            )
            distance = haversine_km(
                pickup.latitude, pickup.longitude, vendor.latitude, vendor.longitude
            )
            assert distance <= vendor.service_radius_km, f"{vendor.name} offered out of range"
            assert t.vendor_id not in refused, f"{vendor.name} offered #{pickup.pk} after refusing"

    def check_pickup(self, pickup, transitions, rejections, receipts, now) -> None:
        name = f"#{pickup.pk} ({pickup.status})"
        status = Status(pickup.status)
        # Assignment runs right after every commit, so nothing is left waiting for it.
        assert status != Status.PENDING, f"{name} was left pending"
        assert (pickup.vendor_id is not None) == (status in VENDOR_HELD), f"{name}: vendor"

        # The history is a path through the table from pending to the current status.
        first, *rest = transitions
        assert (first.event, first.from_status, first.to_status) == ("create", "", "pending")
        at = Status.PENDING
        refused = []
        for t in rest:
            assert t.from_status == at, f"{name}: {t} does not follow {at}"
            step = (Status(t.from_status), Event(t.event))
            assert TRANSITIONS.get(step) == t.to_status, f"{name}: {t} is not in the table"
            at = Status(t.to_status)
            if t.event in REJECTION_ROLE_OF_EVENT:
                refused.append((t.vendor_id, REJECTION_ROLE_OF_EVENT[t.event]))
        assert at == status, f"{name}: the history ends at {at}"
        assert pickup.version == len(transitions) + self.edits[pickup.pk], f"{name}: version"

        # One rejection per refusal in the history, and the holder is never one that refused.
        assert sorted(refused) == sorted((r.vendor_id, r.role) for r in rejections), name
        assert pickup.vendor_id not in {r.vendor_id for r in rejections}, name

        items = list(pickup.items.all())
        if status in {Status.PICKED_UP, Status.COMPLETED}:
            assert all(item.actual_kg is not None for item in items), f"{name}: unweighed"
        assert (pickup.pk in receipts) == (status == Status.COMPLETED), f"{name}: receipt"

        # The timers: exactly the status's own.
        assert (pickup.offer_expires_at is not None) == (status == Status.OFFERED), name
        assert (pickup.next_retry_at is not None) == (status == Status.UNASSIGNED), name

        # What the sweeps should have handled when they last ran.
        if "offers" in self.swept and status == Status.OFFERED:
            assert pickup.offer_expires_at > self.swept["offers"], f"{name}: offer not withdrawn"
        if "retries" in self.swept and status == Status.UNASSIGNED:
            assert pickup.next_retry_at > self.swept["retries"], f"{name}: retry not run"
        if "expiry" in self.swept and status in EXPIRABLE:
            assert pickup.window_end > self.swept["expiry"], f"{name}: window ended, not expired"

    def check_notifications(self, pickups, history) -> None:
        members = self.member_of_vendor
        by_key: dict[str, list[Notification]] = defaultdict(list)
        per_user: dict[int, list[int]] = defaultdict(list)
        for n in Notification.objects.order_by("recipient_id", "seq"):
            by_key[n.event_key].append(n)
            per_user[n.recipient_id].append(n.seq)
        for user, seqs in per_user.items():
            assert seqs == list(range(1, len(seqs) + 1)), f"user {user}: numbers {seqs}"

        for key, notes in by_key.items():
            first = notes[0]
            assert all((n.kind, n.data) == (first.kind, first.data) for n in notes), key
            pickup = pickups[first.data["pickup_id"]]
            assert key.startswith(f"pickup:{pickup.pk}:"), key

        for pickup in pickups.values():
            customer_notes = [
                n
                for n in Notification.objects.filter(recipient_id=pickup.customer_id).order_by(
                    "seq"
                )
                if n.data.get("pickup_id") == pickup.pk
            ]
            announced = [t for t in history[pickup.pk] if t.event != Event.RETRY]
            holder = None
            version = 0
            edits = 0
            for note in customer_notes:
                recipients = {n.recipient_id for n in by_key[note.event_key]}
                name = f"#{pickup.pk} {note.kind} {note.data}"
                if note.kind == "receipt.issued":
                    assert pickup.status == Status.COMPLETED, name
                    assert recipients == {pickup.customer_id, members[pickup.vendor_id]}, name
                    continue
                assert note.event_key == f"pickup:{pickup.pk}:v{note.data['version']}", name
                assert version < note.data["version"] <= pickup.version, f"{name}: version"
                version = note.data["version"]
                if note.kind == "pickup.updated":
                    edits += 1
                    expected = {pickup.customer_id} | ({members[holder]} if holder else set())
                    assert recipients == expected, f"{name} went to {recipients}"
                    continue
                assert announced, f"{name} matches no transition"
                t = announced.pop(0)
                assert note.kind == KIND_OF_EVENT[t.event], f"{name} reports {t}"
                assert note.data["status"] == t.to_status, f"{name} reports {t}"
                expected = {pickup.customer_id} | ({members[t.vendor_id]} if t.vendor_id else set())
                assert recipients == expected, f"{name} went to {recipients}"
                holder = t.vendor_id if t.to_status in VENDOR_HELD else None
            assert not announced, f"#{pickup.pk}: {announced} were never announced"
            assert edits == self.edits[pickup.pk], f"#{pickup.pk}: edits announced"

    def check_terminal(self, pickups, history, rejections) -> None:
        for pickup in pickups.values():
            snapshot = (
                pickup.status,
                pickup.version,
                pickup.vendor_id,
                pickup.updated_at,
                len(history[pickup.pk]),
                len(rejections[pickup.pk]),
                Notification.objects.filter(event_key__startswith=f"pickup:{pickup.pk}:").count(),
            )
            if pickup.pk in self.terminal:
                assert snapshot == self.terminal[pickup.pk], f"#{pickup.pk} changed after the end"
            elif pickup.status in TERMINAL:
                self.terminal[pickup.pk] = snapshot


@pytest.mark.timeout(900)  # room for Hypothesis to shrink a failure (up to 5 minutes)
def test_the_lifecycle_keeps_its_invariants():
    run_state_machine_as_test(
        LifecycleMachine,
        settings=settings(
            max_examples=40, stateful_step_count=30, deadline=None, database=None, phases=PHASES
        ),
    )
