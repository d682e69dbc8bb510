"""Access negotiation (BBMRI-ERIC Negotiator v3 lifecycle): requests, DAC decisions, grants."""
