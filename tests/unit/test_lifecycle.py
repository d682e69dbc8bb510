"""The negotiation lifecycle tables: every legal transition works, every illegal one is
refused with a message that names the state and what is possible from it."""

from __future__ import annotations

import pytest

from oncofed.hub.negotiation import lifecycle as lc
from oncofed.hub.negotiation.lifecycle import (
    NegotiationEvent as NE,
)
from oncofed.hub.negotiation.lifecycle import (
    NegotiationState as N,
)
from oncofed.hub.negotiation.lifecycle import (
    ResourceEvent as RE,
)
from oncofed.hub.negotiation.lifecycle import (
    ResourceState as R,
)

# The Negotiator v3 negotiation lifecycle, written out once more by hand.
EXPECTED_NEGOTIATION = {
    (N.DRAFT, NE.SUBMIT): N.SUBMITTED,
    (N.DRAFT, NE.ABANDON): N.ABANDONED,
    (N.SUBMITTED, NE.APPROVE): N.APPROVED,
    (N.SUBMITTED, NE.DECLINE): N.DECLINED,
    (N.SUBMITTED, NE.ABANDON): N.ABANDONED,
    (N.APPROVED, NE.START): N.IN_PROGRESS,
    (N.APPROVED, NE.ABANDON): N.ABANDONED,
    (N.IN_PROGRESS, NE.PAUSE): N.PAUSED,
    (N.IN_PROGRESS, NE.CONCLUDE): N.CONCLUDED,
    (N.IN_PROGRESS, NE.ABANDON): N.ABANDONED,
    (N.PAUSED, NE.UNPAUSE): N.IN_PROGRESS,
    (N.PAUSED, NE.ABANDON): N.ABANDONED,
}

EXPECTED_RESOURCE = {
    (R.SUBMITTED, RE.CONTACT): R.REPRESENTATIVE_CONTACTED,
    (R.SUBMITTED, RE.MARK_AS_UNREACHABLE): R.REPRESENTATIVE_UNREACHABLE,
    (R.REPRESENTATIVE_UNREACHABLE, RE.CONTACT): R.REPRESENTATIVE_CONTACTED,
    (R.RETURNED_FOR_RESUBMISSION, RE.RESUBMIT): R.REPRESENTATIVE_CONTACTED,
    (R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT, RE.MARK_AS_AVAILABLE): R.RESOURCE_AVAILABLE,
    (R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT, RE.MARK_AS_UNAVAILABLE): R.RESOURCE_UNAVAILABLE,
    (R.RESOURCE_AVAILABLE, RE.INDICATE_ACCESS_CONDITIONS): R.ACCESS_CONDITIONS_INDICATED,
    (R.RESOURCE_AVAILABLE, RE.GRANT_ACCESS_TO_RESOURCE): R.RESOURCE_MADE_AVAILABLE,
    (R.RESOURCE_AVAILABLE, RE.MARK_AS_NOT_MADE_AVAILABLE): R.RESOURCE_NOT_MADE_AVAILABLE,
    (R.ACCESS_CONDITIONS_INDICATED, RE.ACCEPT_ACCESS_CONDITIONS): R.ACCESS_CONDITIONS_MET,
    (R.ACCESS_CONDITIONS_INDICATED, RE.DECLINE_ACCESS_CONDITIONS): R.RESOURCE_NOT_MADE_AVAILABLE,
    (R.ACCESS_CONDITIONS_MET, RE.GRANT_ACCESS_TO_RESOURCE): R.RESOURCE_MADE_AVAILABLE,
    (R.ACCESS_CONDITIONS_MET, RE.MARK_AS_NOT_MADE_AVAILABLE): R.RESOURCE_NOT_MADE_AVAILABLE,
}
for _state in (R.REPRESENTATIVE_CONTACTED, R.CHECKING_AVAILABILITY):
    EXPECTED_RESOURCE |= {
        (_state, RE.RETURN_FOR_RESUBMISSION): R.RETURNED_FOR_RESUBMISSION,
        (_state, RE.MARK_AS_AVAILABLE): R.RESOURCE_AVAILABLE,
        (_state, RE.MARK_AS_UNAVAILABLE): R.RESOURCE_UNAVAILABLE,
        (
            _state,
            RE.MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT,
        ): R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT,
    }
EXPECTED_RESOURCE[(R.REPRESENTATIVE_CONTACTED, RE.MARK_AS_CHECKING_AVAILABILITY)] = (
    R.CHECKING_AVAILABILITY
)

ALL_NEGOTIATION = [(s, e) for s in N for e in NE]
ALL_RESOURCE = [(s, e) for s in R for e in RE]


def test_states_and_events_are_exactly_those_of_the_negotiator() -> None:
    assert {s.value for s in N} == {
        "DRAFT",
        "SUBMITTED",
        "APPROVED",
        "DECLINED",
        "IN_PROGRESS",
        "PAUSED",
        "CONCLUDED",
        "ABANDONED",
    }
    assert {e.value for e in NE} == {
        "SUBMIT",
        "APPROVE",
        "DECLINE",
        "START",
        "PAUSE",
        "UNPAUSE",
        "ABANDON",
        "CONCLUDE",
    }


@pytest.mark.parametrize(("state", "event"), ALL_NEGOTIATION)
def test_negotiation_transition(state: N, event: NE) -> None:
    expected = EXPECTED_NEGOTIATION.get((state, event))
    if expected is not None:
        assert lc.negotiation_step(state.value, event.value) is expected
        assert event.value in lc.allowed_negotiation_events(state.value)
        return
    with pytest.raises(lc.TransitionError) as err:
        lc.negotiation_step(state.value, event.value)
    message = str(err.value)
    assert f"cannot {event.value}" in message and state.value in message
    allowed = lc.allowed_negotiation_events(state.value)
    assert all(a in message for a in allowed)
    if not allowed:
        assert "final" in message


@pytest.mark.parametrize(("state", "event"), ALL_RESOURCE)
def test_resource_transition(state: R, event: RE) -> None:
    expected = EXPECTED_RESOURCE.get((state, event))
    if expected is not None:
        assert lc.resource_step(state.value, event.value) is expected
        return
    with pytest.raises(lc.TransitionError) as err:
        lc.resource_step(state.value, event.value)
    assert f"cannot {event.value} a resource that is {state.value}" in str(err.value)


def test_tables_hold_nothing_more_than_expected() -> None:
    legal_n = {(s, e) for s, t in lc.NEGOTIATION_TRANSITIONS.items() for e in t}
    legal_r = {(s, e) for s, t in lc.RESOURCE_TRANSITIONS.items() for e in t}
    assert legal_n == set(EXPECTED_NEGOTIATION)
    assert legal_r == set(EXPECTED_RESOURCE)
    assert {N.DECLINED, N.CONCLUDED, N.ABANDONED} == lc.FINAL_NEGOTIATION_STATES
    assert {
        R.RESOURCE_UNAVAILABLE,
        R.RESOURCE_NOT_MADE_AVAILABLE,
        R.RESOURCE_MADE_AVAILABLE,
    } == lc.FINAL_RESOURCE_STATES


def test_every_event_has_an_actor_and_only_the_dac_grants() -> None:
    assert set(lc.NEGOTIATION_ACTORS) == set(NE)
    assert set(lc.RESOURCE_ACTORS) == set(RE)
    assert lc.RESOURCE_ACTORS[RE.GRANT_ACCESS_TO_RESOURCE] == {"dac"}
    assert lc.NEGOTIATION_ACTORS[NE.APPROVE] == {"admin"}


def test_unknown_state_or_event_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown negotiation event 'FINISH'; one of SUBMIT"):
        lc.negotiation_step("DRAFT", "FINISH")
    with pytest.raises(ValueError, match="unknown resource state"):
        lc.resource_step("LOST", "CONTACT")
