import itertools

import pytest

from pickups.transitions import TERMINAL, TRANSITIONS, Event, Status, next_status
from procurement_system.errors import InvalidTransition

ALL_PAIRS = list(itertools.product(Status, Event))


@pytest.mark.parametrize("status, event", [p for p in ALL_PAIRS if p in TRANSITIONS])
def test_legal_transitions_lead_where_the_table_says(status, event):
    assert next_status(status.value, event) == TRANSITIONS[(status, event)]


@pytest.mark.parametrize("status, event", [p for p in ALL_PAIRS if p not in TRANSITIONS])
def test_every_other_transition_is_refused(status, event):
    with pytest.raises(InvalidTransition) as raised:
        next_status(status.value, event)
    assert raised.value.code == "invalid_transition"
    assert status.value in raised.value.message


def test_terminal_statuses_have_no_way_out():
    assert not [pair for pair in TRANSITIONS if pair[0] in TERMINAL]


def test_the_happy_path_reaches_completed():
    status = Status.PENDING
    for event in (Event.ASSIGN, Event.ACCEPT, Event.START, Event.PICK_UP, Event.COMPLETE):
        status = next_status(status, event)
    assert status == Status.COMPLETED


@pytest.mark.parametrize("status", ["pending", "offered", "unassigned", "accepted"])
def test_the_customer_can_cancel_before_pickup(status):
    assert next_status(status, Event.CANCEL) == Status.CANCELLED
