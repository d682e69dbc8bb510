"""The negotiation lifecycle as pure data: states, events, transitions and who may fire them.

Two machines, as in the BBMRI-ERIC Negotiator v3 (STANDARDS §8):

* the **negotiation** as a whole (DRAFT → SUBMITTED → APPROVED → IN_PROGRESS → CONCLUDED, with
  DECLINED, PAUSED and ABANDONED), driven by the researcher and the hub's reviewers;
* each **requested resource** (a dataset at one provider), driven by that provider's data
  access committee (DAC): from SUBMITTED through REPRESENTATIVE_CONTACTED to
  RESOURCE_MADE_AVAILABLE (the grant) or a refusal.

Nothing here touches a database: `negotiation_step` and `resource_step` return the next state
or raise `TransitionError` whose message says what *is* possible from the current state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

_E = TypeVar("_E", bound=StrEnum)


class NegotiationState(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    IN_PROGRESS = "IN_PROGRESS"
    PAUSED = "PAUSED"
    CONCLUDED = "CONCLUDED"
    ABANDONED = "ABANDONED"


class NegotiationEvent(StrEnum):
    SUBMIT = "SUBMIT"
    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    START = "START"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"
    ABANDON = "ABANDON"
    CONCLUDE = "CONCLUDE"


class ResourceState(StrEnum):
    SUBMITTED = "SUBMITTED"
    REPRESENTATIVE_CONTACTED = "REPRESENTATIVE_CONTACTED"
    REPRESENTATIVE_UNREACHABLE = "REPRESENTATIVE_UNREACHABLE"
    RETURNED_FOR_RESUBMISSION = "RETURNED_FOR_RESUBMISSION"
    CHECKING_AVAILABILITY = "CHECKING_AVAILABILITY"
    RESOURCE_AVAILABLE = "RESOURCE_AVAILABLE"
    RESOURCE_UNAVAILABLE = "RESOURCE_UNAVAILABLE"
    RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT = "RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT"
    ACCESS_CONDITIONS_INDICATED = "ACCESS_CONDITIONS_INDICATED"
    ACCESS_CONDITIONS_MET = "ACCESS_CONDITIONS_MET"
    RESOURCE_NOT_MADE_AVAILABLE = "RESOURCE_NOT_MADE_AVAILABLE"
    RESOURCE_MADE_AVAILABLE = "RESOURCE_MADE_AVAILABLE"


class ResourceEvent(StrEnum):
    CONTACT = "CONTACT"
    MARK_AS_UNREACHABLE = "MARK_AS_UNREACHABLE"
    RETURN_FOR_RESUBMISSION = "RETURN_FOR_RESUBMISSION"
    RESUBMIT = "RESUBMIT"
    MARK_AS_CHECKING_AVAILABILITY = "MARK_AS_CHECKING_AVAILABILITY"
    MARK_AS_AVAILABLE = "MARK_AS_AVAILABLE"
    MARK_AS_UNAVAILABLE = "MARK_AS_UNAVAILABLE"
    MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT = (
        "MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT"
    )
    INDICATE_ACCESS_CONDITIONS = "INDICATE_ACCESS_CONDITIONS"
    ACCEPT_ACCESS_CONDITIONS = "ACCEPT_ACCESS_CONDITIONS"
    DECLINE_ACCESS_CONDITIONS = "DECLINE_ACCESS_CONDITIONS"
    MARK_AS_NOT_MADE_AVAILABLE = "MARK_AS_NOT_MADE_AVAILABLE"
    GRANT_ACCESS_TO_RESOURCE = "GRANT_ACCESS_TO_RESOURCE"


N, NE = NegotiationState, NegotiationEvent
R, RE = ResourceState, ResourceEvent

NEGOTIATION_TRANSITIONS: dict[NegotiationState, dict[NegotiationEvent, NegotiationState]] = {
    N.DRAFT: {NE.SUBMIT: N.SUBMITTED, NE.ABANDON: N.ABANDONED},
    N.SUBMITTED: {NE.APPROVE: N.APPROVED, NE.DECLINE: N.DECLINED, NE.ABANDON: N.ABANDONED},
    N.APPROVED: {NE.START: N.IN_PROGRESS, NE.ABANDON: N.ABANDONED},
    N.IN_PROGRESS: {NE.PAUSE: N.PAUSED, NE.CONCLUDE: N.CONCLUDED, NE.ABANDON: N.ABANDONED},
    N.PAUSED: {NE.UNPAUSE: N.IN_PROGRESS, NE.ABANDON: N.ABANDONED},
    N.DECLINED: {},
    N.CONCLUDED: {},
    N.ABANDONED: {},
}

# Who may fire a negotiation event: the researcher who owns it, or a hub admin (reviewer).
NEGOTIATION_ACTORS: dict[NegotiationEvent, frozenset[str]] = {
    NE.SUBMIT: frozenset({"owner"}),
    NE.APPROVE: frozenset({"admin"}),
    NE.DECLINE: frozenset({"admin"}),
    NE.START: frozenset({"owner", "admin"}),
    NE.PAUSE: frozenset({"owner", "admin"}),
    NE.UNPAUSE: frozenset({"owner", "admin"}),
    NE.ABANDON: frozenset({"owner", "admin"}),
    NE.CONCLUDE: frozenset({"owner", "admin"}),
}

_DAC_DECIDES = {
    RE.RETURN_FOR_RESUBMISSION: R.RETURNED_FOR_RESUBMISSION,
    RE.MARK_AS_CHECKING_AVAILABILITY: R.CHECKING_AVAILABILITY,
    RE.MARK_AS_AVAILABLE: R.RESOURCE_AVAILABLE,
    RE.MARK_AS_UNAVAILABLE: R.RESOURCE_UNAVAILABLE,
    RE.MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT: (
        R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT
    ),
}

RESOURCE_TRANSITIONS: dict[ResourceState, dict[ResourceEvent, ResourceState]] = {
    R.SUBMITTED: {
        RE.CONTACT: R.REPRESENTATIVE_CONTACTED,
        RE.MARK_AS_UNREACHABLE: R.REPRESENTATIVE_UNREACHABLE,
    },
    R.REPRESENTATIVE_UNREACHABLE: {RE.CONTACT: R.REPRESENTATIVE_CONTACTED},
    R.REPRESENTATIVE_CONTACTED: dict(_DAC_DECIDES),
    R.CHECKING_AVAILABILITY: {
        k: v for k, v in _DAC_DECIDES.items() if k != RE.MARK_AS_CHECKING_AVAILABILITY
    },
    R.RETURNED_FOR_RESUBMISSION: {RE.RESUBMIT: R.REPRESENTATIVE_CONTACTED},
    R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT: {
        RE.MARK_AS_AVAILABLE: R.RESOURCE_AVAILABLE,
        RE.MARK_AS_UNAVAILABLE: R.RESOURCE_UNAVAILABLE,
    },
    R.RESOURCE_AVAILABLE: {
        RE.INDICATE_ACCESS_CONDITIONS: R.ACCESS_CONDITIONS_INDICATED,
        RE.GRANT_ACCESS_TO_RESOURCE: R.RESOURCE_MADE_AVAILABLE,
        RE.MARK_AS_NOT_MADE_AVAILABLE: R.RESOURCE_NOT_MADE_AVAILABLE,
    },
    R.ACCESS_CONDITIONS_INDICATED: {
        RE.ACCEPT_ACCESS_CONDITIONS: R.ACCESS_CONDITIONS_MET,
        RE.DECLINE_ACCESS_CONDITIONS: R.RESOURCE_NOT_MADE_AVAILABLE,
    },
    R.ACCESS_CONDITIONS_MET: {
        RE.GRANT_ACCESS_TO_RESOURCE: R.RESOURCE_MADE_AVAILABLE,
        RE.MARK_AS_NOT_MADE_AVAILABLE: R.RESOURCE_NOT_MADE_AVAILABLE,
    },
    R.RESOURCE_UNAVAILABLE: {},
    R.RESOURCE_NOT_MADE_AVAILABLE: {},
    R.RESOURCE_MADE_AVAILABLE: {},
}

# "system": the hub itself (contacting representatives when a negotiation starts);
# "dac": a DAC member of the resource's provider; "owner": the requesting researcher.
RESOURCE_ACTORS: dict[ResourceEvent, frozenset[str]] = {
    RE.CONTACT: frozenset({"system"}),
    RE.MARK_AS_UNREACHABLE: frozenset({"system"}),
    RE.RESUBMIT: frozenset({"owner"}),
    RE.ACCEPT_ACCESS_CONDITIONS: frozenset({"owner"}),
    RE.DECLINE_ACCESS_CONDITIONS: frozenset({"owner"}),
    **{
        e: frozenset({"dac"})
        for e in (
            *_DAC_DECIDES,
            RE.INDICATE_ACCESS_CONDITIONS,
            RE.MARK_AS_NOT_MADE_AVAILABLE,
            RE.GRANT_ACCESS_TO_RESOURCE,
        )
    },
}

FINAL_NEGOTIATION_STATES = frozenset(s for s, t in NEGOTIATION_TRANSITIONS.items() if not t)
FINAL_RESOURCE_STATES = frozenset(s for s, t in RESOURCE_TRANSITIONS.items() if not t)
# States in which the provider's DAC owes an answer (reminders go out for these).
AWAITING_DAC = frozenset(
    {R.REPRESENTATIVE_CONTACTED, R.CHECKING_AVAILABILITY, R.ACCESS_CONDITIONS_MET}
)


class TransitionError(ValueError):
    """An event that is not possible in the current state; the message says what is."""

    def __init__(self, what: str, state: str, event: str, allowed: list[str]) -> None:
        options = ", ".join(allowed) if allowed else f"nothing: {state} is final"
        super().__init__(
            f"cannot {event} a {what} that is {state}; possible from {state}: {options}"
        )
        self.state, self.event, self.allowed = state, event, allowed


def _parse(kind: type[_E], value: str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(m.value for m in kind)
        raise ValueError(f"unknown {what} {value!r}; one of {names}") from None


def negotiation_step(state: str, event: str) -> NegotiationState:
    """The negotiation's state after `event`, or TransitionError."""
    current = _parse(NegotiationState, state, "negotiation state")
    ev = _parse(NegotiationEvent, event, "negotiation event")
    table = NEGOTIATION_TRANSITIONS[current]
    if ev not in table:
        raise TransitionError("negotiation", current, ev, [e.value for e in table])
    return table[ev]


def resource_step(state: str, event: str) -> ResourceState:
    """A requested resource's state after `event`, or TransitionError."""
    current = _parse(ResourceState, state, "resource state")
    ev = _parse(ResourceEvent, event, "resource event")
    table = RESOURCE_TRANSITIONS[current]
    if ev not in table:
        raise TransitionError("resource", current, ev, [e.value for e in table])
    return table[ev]


def resource_path(state: str, event: str) -> list[ResourceEvent]:
    """The Negotiator transitions that `event` fires from `state`: itself, or for a grant
    from where the DAC is still deciding, MARK_AS_AVAILABLE first. A DAC grants in one
    step, while the history and the API keep the Negotiator's two (STANDARDS §8)."""
    current = _parse(ResourceState, state, "resource state")
    ev = _parse(ResourceEvent, event, "resource event")
    table = RESOURCE_TRANSITIONS[current]
    if ev in table:
        return [ev]
    if ev == RE.GRANT_ACCESS_TO_RESOURCE and RE.MARK_AS_AVAILABLE in table:
        return [RE.MARK_AS_AVAILABLE, ev]
    raise TransitionError("resource", current, ev, allowed_resource_events(current))


def allowed_negotiation_events(state: str) -> list[str]:
    return [e.value for e in NEGOTIATION_TRANSITIONS[NegotiationState(state)]]


def allowed_resource_events(state: str) -> list[str]:
    """The events possible from `state`, a one-step grant first where the DAC may grant."""
    table = RESOURCE_TRANSITIONS[ResourceState(state)]
    grant = RE.GRANT_ACCESS_TO_RESOURCE in table or RE.MARK_AS_AVAILABLE in table
    return ([RE.GRANT_ACCESS_TO_RESOURCE.value] if grant else []) + [
        e.value for e in table if e != RE.GRANT_ACCESS_TO_RESOURCE
    ]


# -- in plain words ----------------------------------------------------------------------------
# What the portal and the CLI show; the API keeps the Negotiator's names.

NEGOTIATION_STATE_WORDS: dict[NegotiationState, str] = {
    N.DRAFT: "draft",
    N.SUBMITTED: "submitted",
    N.APPROVED: "approved",
    N.DECLINED: "declined",
    N.IN_PROGRESS: "in progress",
    N.PAUSED: "paused",
    N.CONCLUDED: "concluded",
    N.ABANDONED: "withdrawn",
}
RESOURCE_STATE_WORDS: dict[ResourceState, str] = {
    R.SUBMITTED: "not yet sent to the provider",
    R.REPRESENTATIVE_CONTACTED: "awaiting the provider's decision",
    R.REPRESENTATIVE_UNREACHABLE: "provider not reachable",
    R.RETURNED_FOR_RESUBMISSION: "returned for changes",
    R.CHECKING_AVAILABILITY: "provider checking availability",
    R.RESOURCE_AVAILABLE: "available, decision pending",
    R.RESOURCE_UNAVAILABLE: "not available",
    R.RESOURCE_UNAVAILABLE_WILLING_TO_COLLECT: "not available yet (provider may collect)",
    R.ACCESS_CONDITIONS_INDICATED: "conditions set: awaiting the researcher",
    R.ACCESS_CONDITIONS_MET: "conditions accepted: awaiting the grant",
    R.RESOURCE_NOT_MADE_AVAILABLE: "refused",
    R.RESOURCE_MADE_AVAILABLE: "granted",
}
# What an event did, after "<who> ": "dora granted access".
EVENT_WORDS: dict[str, str] = {
    NE.SUBMIT: "submitted the request",
    NE.APPROVE: "approved the request",
    NE.DECLINE: "declined the request",
    NE.START: "started the request",
    NE.PAUSE: "paused the request",
    NE.UNPAUSE: "resumed the request",
    NE.ABANDON: "withdrew the request",
    NE.CONCLUDE: "concluded the request",
    RE.CONTACT: "asked the provider's data access committee",
    RE.MARK_AS_UNREACHABLE: "could not reach the provider's data access committee",
    RE.RETURN_FOR_RESUBMISSION: "returned it for changes",
    RE.RESUBMIT: "resubmitted",
    RE.MARK_AS_CHECKING_AVAILABILITY: "is checking availability",
    RE.MARK_AS_AVAILABLE: "marked it available",
    RE.MARK_AS_UNAVAILABLE: "marked it not available",
    RE.MARK_AS_CURRENTLY_UNAVAILABLE_BUT_WILLING_TO_COLLECT: (
        "marked it not available yet, willing to collect"
    ),
    RE.INDICATE_ACCESS_CONDITIONS: "set access conditions",
    RE.ACCEPT_ACCESS_CONDITIONS: "accepted the conditions",
    RE.DECLINE_ACCESS_CONDITIONS: "declined the conditions",
    RE.MARK_AS_NOT_MADE_AVAILABLE: "refused access",
    RE.GRANT_ACCESS_TO_RESOURCE: "granted access",
}


def state_words(state: str) -> str:
    """A negotiation's or a resource's state as people say it ("granted")."""
    for table in (NEGOTIATION_STATE_WORDS, RESOURCE_STATE_WORDS):
        if state in table:
            return table[state]  # type: ignore[index]
    return state.replace("_", " ").lower()


def event_words(event: str) -> str:
    return EVENT_WORDS.get(event, event.replace("_", " ").lower())
