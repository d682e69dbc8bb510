"""Federated training and validation runs at the hub (issue 20): the run table, the
coordinator that drives a Flower strategy in the learning worker over `fl.round` tasks, and
the API routes."""
