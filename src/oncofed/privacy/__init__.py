"""Disclosure control: thresholds, rounding, cached noise, budgets and rate limits."""

from oncofed.privacy.decision import DisclosureDecision
from oncofed.privacy.disclose import DisclosureSummary, disclose, release_count, round_to
from oncofed.privacy.errors import BudgetExhausted, DisclosureRefused, RateLimited
from oncofed.privacy.ledger import Admission, PrivacyLedger, metadata
from oncofed.privacy.noise import LaplaceSampler
from oncofed.privacy.policy import DisclosurePolicy, load_policy

__all__ = [
    "Admission",
    "BudgetExhausted",
    "DisclosureDecision",
    "DisclosurePolicy",
    "DisclosureRefused",
    "DisclosureSummary",
    "LaplaceSampler",
    "PrivacyLedger",
    "RateLimited",
    "disclose",
    "load_policy",
    "metadata",
    "release_count",
    "round_to",
]
