"""Tier 3 at the hub: runs of federated analyses over the signed task channel.

``runs`` drives an analysis round after round (send the state, wait for the nodes' partials,
combine, repeat until the analysis says it is done); ``routes`` is the researcher's API.
The hub holds no patient-level data: it sees only partials that passed each node's
disclosure rules, and a researcher sees only the pooled result.
"""
